//! Persistence in `--data-dir`:
//!
//! * `chain.jsonl` — one block per line (canonical JSON), genesis first.
//!   New blocks are appended and fsync'd before they are served or gossiped;
//!   a fork switch rewrites the file atomically (temp file, fsync, rename,
//!   fsync of the directory).
//!
//! The peer id is not stored: like the real node's, it is new at every start
//! (a `peer_id` file left by an older stand-in is ignored and left alone).
//!
//! On start the file is loaded and validated block by block. Everything from
//! the first bad line on (torn write, garbage, broken link, hash mismatch) is
//! discarded; the original file is kept as `chain.jsonl.corrupt-<ms>` and the
//! valid prefix is rewritten.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::block::{genesis, Block};
use crate::util::now_ms;

pub const CHAIN_FILE: &str = "chain.jsonl";

pub struct Storage {
    dir: PathBuf,
    chain_path: PathBuf,
    file: File,
}

#[derive(Debug)]
pub struct Loaded {
    pub blocks: Vec<Block>,
    /// Why part of the file was discarded, if it was.
    pub problem: Option<String>,
    /// Where the damaged original was moved.
    pub backup: Option<PathBuf>,
}

/// Validate the content of a chain file. Returns the valid prefix (at least
/// genesis) and a description of the first problem, if any.
pub fn parse_chain(content: &[u8]) -> (Vec<Block>, Option<String>) {
    let mut blocks: Vec<Block> = Vec::new();
    let mut rest = content;
    let mut line_no = 0;
    while !rest.is_empty() {
        line_no += 1;
        let (line, next) = match rest.iter().position(|b| *b == b'\n') {
            Some(p) => (&rest[..p], &rest[p + 1..]),
            None => {
                let problem = format!("line {}: incomplete last line ({} bytes, torn write)", line_no, rest.len());
                return (finish(blocks), Some(problem));
            }
        };
        rest = next;
        let parsed = std::str::from_utf8(line).map_err(|e| e.to_string()).and_then(Block::parse);
        let b = match parsed {
            Ok(b) => b,
            Err(e) => return (finish(blocks), Some(format!("line {}: {}", line_no, e))),
        };
        let check = match blocks.last() {
            None => {
                if b == genesis() {
                    Ok(())
                } else {
                    Err("first block is not this network's genesis".to_string())
                }
            }
            Some(parent) => b.check_link(parent),
        };
        if let Err(e) = check {
            return (finish(blocks), Some(format!("line {}: {}", line_no, e)));
        }
        blocks.push(b);
    }
    (finish(blocks), None)
}

fn finish(blocks: Vec<Block>) -> Vec<Block> {
    if blocks.is_empty() {
        vec![genesis()]
    } else {
        blocks
    }
}

fn ctx(what: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{} {}: {}", what, path.display(), e))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| ctx("fsync", dir, e))
}

/// Write `data` to `path` atomically (temp file, fsync, rename, fsync dir).
fn write_atomic(dir: &Path, path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(|e| ctx("create", &tmp, e))?;
        f.write_all(data).map_err(|e| ctx("write", &tmp, e))?;
        f.sync_all().map_err(|e| ctx("fsync", &tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| ctx("rename to", path, e))?;
    sync_dir(dir)
}

fn serialize(parts: &[&[Block]]) -> Vec<u8> {
    let mut out = String::new();
    for part in parts {
        for b in part.iter() {
            b.to_json().write_to(&mut out);
            out.push('\n');
        }
    }
    out.into_bytes()
}

impl Storage {
    /// Open (creating if needed) the data dir and its chain.
    /// Any error means the caller must run in memory.
    pub fn open(dir: &Path) -> io::Result<(Storage, Loaded)> {
        fs::create_dir_all(dir).map_err(|e| ctx("create directory", dir, e))?;
        // the directory must be writable (new files are created for atomic rewrites)
        let probe = dir.join(".write-check");
        File::create(&probe).and_then(|mut f| f.write_all(b"ok")).map_err(|e| ctx("write", &probe, e))?;
        fs::remove_file(&probe).map_err(|e| ctx("remove", &probe, e))?;

        let chain_path = dir.join(CHAIN_FILE);
        let content = match fs::read(&chain_path) {
            Ok(c) => Some(c),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(ctx("read", &chain_path, e)),
        };
        let mut loaded = Loaded { blocks: vec![genesis()], problem: None, backup: None };
        match content {
            None => write_atomic(dir, &chain_path, &serialize(&[&loaded.blocks]))?,
            Some(c) if c.is_empty() => write_atomic(dir, &chain_path, &serialize(&[&loaded.blocks]))?,
            Some(c) => {
                let (blocks, problem) = parse_chain(&c);
                loaded.blocks = blocks;
                if problem.is_some() {
                    let backup = dir.join(format!("{}.corrupt-{}", CHAIN_FILE, now_ms()));
                    fs::rename(&chain_path, &backup).map_err(|e| ctx("rename", &chain_path, e))?;
                    write_atomic(dir, &chain_path, &serialize(&[&loaded.blocks]))?;
                    loaded.backup = Some(backup);
                }
                loaded.problem = problem;
            }
        }
        let file = OpenOptions::new().append(true).open(&chain_path).map_err(|e| ctx("open", &chain_path, e))?;
        Ok((Storage { dir: dir.to_path_buf(), chain_path, file }, loaded))
    }

    /// The clean-shutdown flush: fsync the chain file (data and metadata) and
    /// the directory. Every block is already fsync'd as it is written, so this
    /// only matters for a write that another thread has just finished.
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush().map_err(|e| ctx("flush", &self.chain_path, e))?;
        self.file.sync_all().map_err(|e| ctx("fsync", &self.chain_path, e))?;
        sync_dir(&self.dir)
    }

    /// Append blocks and fsync.
    pub fn append(&mut self, blocks: &[Block]) -> io::Result<()> {
        let data = serialize(&[blocks]);
        self.file.write_all(&data).map_err(|e| ctx("append to", &self.chain_path, e))?;
        self.file.sync_data().map_err(|e| ctx("fsync", &self.chain_path, e))
    }

    /// Replace the whole file with `parts` concatenated, atomically.
    pub fn rewrite(&mut self, parts: &[&[Block]]) -> io::Result<()> {
        write_atomic(&self.dir, &self.chain_path, &serialize(parts))?;
        self.file = OpenOptions::new().append(true).open(&self.chain_path).map_err(|e| ctx("open", &self.chain_path, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::tests::extend;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static N: AtomicUsize = AtomicUsize::new(0);

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "pulse-standin-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn fresh_dir_gets_genesis_and_no_peer_id() {
        let d = tempdir();
        let (mut s, loaded) = Storage::open(&d).unwrap();
        assert_eq!(loaded.blocks, vec![genesis()]);
        assert!(loaded.problem.is_none());
        s.flush().unwrap();
        drop(s);
        // only the chain file: the peer id is not persisted (new at every start)
        let names: Vec<String> = fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
        assert_eq!(names, vec![CHAIN_FILE.to_string()]);
        // a peer_id file left by an older stand-in is ignored and left alone
        fs::write(d.join("peer_id"), "12D3KooWold\n").unwrap();
        let (_s, loaded) = Storage::open(&d).unwrap();
        assert_eq!(loaded.blocks, vec![genesis()]);
        assert_eq!(fs::read_to_string(d.join("peer_id")).unwrap(), "12D3KooWold\n");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn append_reload_and_rewrite() {
        let d = tempdir();
        let (mut s, loaded) = Storage::open(&d).unwrap();
        let seg = extend(&loaded.blocks, 5, "");
        s.append(&seg[..2]).unwrap();
        s.append(&seg[2..]).unwrap();
        drop(s);
        let (mut s, loaded) = Storage::open(&d).unwrap();
        assert_eq!(loaded.blocks.len(), 6);
        assert!(loaded.problem.is_none());
        assert_eq!(loaded.blocks.last(), seg.last());
        // fork switch: keep genesis + 2, then a different branch of 4
        let branch = extend(&loaded.blocks[..3], 4, "other");
        s.rewrite(&[&loaded.blocks[..3], &branch]).unwrap();
        let more = extend(&branch, 1, "");
        s.append(&more).unwrap();
        drop(s);
        let (_s, loaded) = Storage::open(&d).unwrap();
        assert_eq!(loaded.blocks.len(), 3 + 4 + 1);
        assert_eq!(loaded.blocks[3], branch[0]);
        assert!(loaded.problem.is_none());
        assert!(!d.join("chain.tmp").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn torn_and_corrupt_tails_are_cut() {
        let d = tempdir();
        let (mut s, loaded) = Storage::open(&d).unwrap();
        let seg = extend(&loaded.blocks, 4, "");
        s.append(&seg).unwrap();
        drop(s);
        let path = d.join(CHAIN_FILE);

        // torn write: half a line at the end
        let good = fs::read(&path).unwrap();
        let mut torn = good.clone();
        let extra = extend(&seg, 1, "");
        let line = extra[0].to_json().to_string();
        torn.extend_from_slice(&line.as_bytes()[..line.len() / 2]);
        fs::write(&path, &torn).unwrap();
        let (_s, loaded) = Storage::open(&d).unwrap();
        assert_eq!(loaded.blocks.len(), 5);
        assert!(loaded.problem.as_ref().unwrap().contains("incomplete"));
        let backup = loaded.backup.clone().unwrap();
        assert_eq!(fs::read(&backup).unwrap(), torn);
        assert_eq!(fs::read(&path).unwrap(), good, "valid prefix rewritten");

        // garbage line in the middle: everything from it on is dropped
        let text = String::from_utf8(good.clone()).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.insert(3, "{not json");
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        let (_s, loaded) = Storage::open(&d).unwrap();
        assert_eq!(loaded.blocks.len(), 3);
        assert!(loaded.problem.is_some());

        // a tampered block (hash mismatch) cuts the chain there
        let tampered = text.replacen("\"heart_rate\":", "\"heart_rate\":1", 1);
        fs::write(&path, tampered).unwrap();
        let (_s, loaded) = Storage::open(&d).unwrap();
        assert_eq!(loaded.blocks.len(), 1);
        assert!(loaded.problem.unwrap().contains("line 2"));

        // a file from another network (wrong genesis) is set aside
        fs::write(&path, "{\"index\":0}\n").unwrap();
        let (_s, loaded) = Storage::open(&d).unwrap();
        assert_eq!(loaded.blocks, vec![genesis()]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unusable_dir_is_an_error() {
        let d = tempdir();
        fs::create_dir_all(&d).unwrap();
        let file = d.join("a-file");
        fs::write(&file, "x").unwrap();
        // a path below a regular file cannot be created, even by root
        assert!(Storage::open(&file.join("data")).is_err());
        fs::remove_dir_all(&d).unwrap();
    }
}
