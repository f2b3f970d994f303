//! Peer-to-peer: a line-based protocol over TCP (one message per line, fields
//! separated by single spaces, JSON last). See README.md, "Peer protocol".
//!
//!   HELLO <proto> <peer_id> <genesis_hash> <height> <tip_hash>   first line, both sides
//!   TIP <height> <tip_hash>                                        keepalive / announcement
//!   BLOCK <block-json>                                             gossip of a new tip
//!   GETBLOCKS <index>:<hash>[,<index>:<hash>...]                   sync request (locator)
//!   BLOCKS <height> <tip_hash> <json-array-of-blocks>              sync answer

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::block::{genesis, Block};
use crate::chain::better;
use crate::config::PeerAddr;
use crate::json::{self, Json};
use crate::log;
use crate::node::{Accept, Node};
use crate::util::{lock, short, valid_peer_id};

pub const PROTO: &str = "pulse-standin/1";
const READ_TIMEOUT: Duration = Duration::from_secs(20);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const KEEPALIVE: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const INFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const MAX_LINE: u64 = 32 * 1024 * 1024;
const SYNC_MAX_BLOCKS: usize = 500;
const SYNC_MAX_BYTES: usize = 4 * 1024 * 1024;
const MAX_PENDING: usize = 200_000;
const MAX_INBOUND: usize = 64;
const QUEUE: usize = 1024;

static INBOUND: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, PartialEq)]
pub enum End {
    Closed,
    /// The other end turned out to be this very node.
    SelfConnection,
}

/// Accept inbound peer connections.
pub fn listen(node: Arc<Node>, listener: TcpListener) {
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                log::warn(&format!("p2p: accept failed: {}", e));
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let addr = match stream.peer_addr() {
            Ok(a) => a,
            Err(_) => continue,
        };
        if INBOUND.fetch_add(1, Ordering::SeqCst) >= MAX_INBOUND {
            INBOUND.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        let n = node.clone();
        let spawned = thread::Builder::new().name("p2p-in".into()).spawn(move || {
            let _ = run_session(&n, stream, "inbound", addr);
            INBOUND.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            INBOUND.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn connect(peer: &PeerAddr) -> io::Result<(TcpStream, SocketAddr)> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in (peer.host.as_str(), peer.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => return Ok((s, addr)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Keep a connection to `peer` open: reconnect with exponential backoff
/// (0.5 s doubling up to 5 s) whenever it fails or drops.
pub fn dial_forever(node: Arc<Node>, peer: PeerAddr) {
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u64;
    let mut last_warn: Option<Instant> = None;
    loop {
        match connect(&peer) {
            Ok((stream, addr)) => {
                if failures > 0 {
                    log::info(&format!("peer {} reachable again after {} failed attempt(s)", peer.raw, failures));
                }
                failures = 0;
                last_warn = None;
                let started = Instant::now();
                if run_session(&node, stream, "outbound", addr) == End::SelfConnection {
                    log::info(&format!("peer address {} is this node itself; not dialling it again", peer.raw));
                    return;
                }
                if started.elapsed() > Duration::from_secs(10) {
                    backoff = BACKOFF_MIN;
                }
            }
            Err(e) => {
                failures += 1;
                if last_warn.map_or(true, |t| t.elapsed() > Duration::from_secs(60)) {
                    log::warn(&format!("cannot connect to peer {}: {}; retrying with backoff", peer.raw, e));
                    last_warn = Some(Instant::now());
                }
            }
        }
        thread::sleep(backoff);
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn writer_loop(node: Arc<Node>, mut stream: TcpStream, rx: Receiver<String>) {
    loop {
        let line = match rx.recv_timeout(KEEPALIVE) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => node.tip_line(),
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut data = line.into_bytes();
        data.push(b'\n');
        if stream.write_all(&data).is_err() {
            let _ = stream.shutdown(Shutdown::Both);
            break;
        }
    }
}

fn read_line(r: &mut BufReader<TcpStream>, buf: &mut Vec<u8>) -> io::Result<Option<String>> {
    buf.clear();
    let n = r.by_ref().take(MAX_LINE).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        if n as u64 >= MAX_LINE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        return Ok(None); // EOF in the middle of a line
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(std::mem::take(buf)).map(Some).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))
}

struct Session {
    peer_id: Option<String>,
    session: Option<u64>,
    peer_tip: (u64, String),
    inflight: Option<Instant>,
    pending: Vec<Block>,
    bad_tip: Option<String>,
}

fn locator_line(node: &Node, pending: &[Block]) -> String {
    let mut loc: Vec<(u64, String)> = Vec::new();
    if let Some(last) = pending.last() {
        loc.push((last.index, last.block_hash.clone()));
    }
    loc.extend(lock(&node.state).chain.locator());
    let parts: Vec<String> = loc.iter().map(|(i, h)| format!("{}:{}", i, h)).collect();
    format!("GETBLOCKS {}", parts.join(","))
}

/// Ask the peer for blocks if its tip is better than ours.
fn maybe_request(node: &Node, s: &mut Session, tx: &SyncSender<String>) {
    let (h, hash) = node.tip();
    if !better(s.peer_tip.0, &s.peer_tip.1, h, &hash) {
        s.pending.clear();
        return;
    }
    if s.bad_tip.as_ref() == Some(&s.peer_tip.1) {
        return;
    }
    if let Some(t) = s.inflight {
        if t.elapsed() < INFLIGHT_TIMEOUT {
            return;
        }
    }
    if tx.try_send(locator_line(node, &s.pending)).is_ok() {
        s.inflight = Some(Instant::now());
    }
}

fn parse_locator(text: &str) -> Vec<(u64, String)> {
    text.split(',')
        .take(256)
        .filter_map(|e| {
            let (i, h) = e.split_once(':')?;
            Some((i.parse().ok()?, h.to_string()))
        })
        .collect()
}

fn parse_blocks(text: &str) -> Result<Vec<Block>, String> {
    let j = json::parse(text)?;
    let arr = match j {
        Json::Arr(a) => a,
        _ => return Err("BLOCKS payload is not an array".into()),
    };
    let mut out = Vec::with_capacity(arr.len());
    for b in &arr {
        out.push(Block::from_json(b)?);
    }
    for w in out.windows(2) {
        if w[1].index != w[0].index + 1 {
            return Err("BLOCKS are not consecutive".into());
        }
    }
    Ok(out)
}

/// Run one peer connection until it ends.
pub fn run_session(node: &Arc<Node>, stream: TcpStream, direction: &'static str, addr: SocketAddr) -> End {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let (write_half, read_half) = match (stream.try_clone(), stream.try_clone()) {
        (Ok(w), Ok(r)) => (w, r),
        _ => return End::Closed,
    };
    let (tx, rx) = sync_channel::<String>(QUEUE);
    let wnode = node.clone();
    let writer = match thread::Builder::new().name("p2p-write".into()).spawn(move || writer_loop(wnode, write_half, rx)) {
        Ok(h) => h,
        Err(_) => return End::Closed,
    };
    let (h, hash) = node.tip();
    let _ = tx.send(format!("HELLO {} {} {} {} {}", PROTO, node.peer_id, genesis().block_hash, h, hash));

    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let mut buf = Vec::new();
    let mut s = Session { peer_id: None, session: None, peer_tip: (0, String::new()), inflight: None, pending: Vec::new(), bad_tip: None };
    let mut end = End::Closed;
    while let Ok(Some(line)) = read_line(&mut reader, &mut buf) {
        let (cmd, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        if s.peer_id.is_none() && cmd != "HELLO" {
            log::warn(&format!("p2p: {} ({}) spoke before HELLO; closing", addr, direction));
            break;
        }
        match cmd {
            "HELLO" => {
                if s.peer_id.is_some() {
                    continue;
                }
                let f: Vec<&str> = rest.split(' ').collect();
                if f.len() != 5 || f[0] != PROTO {
                    log::warn(&format!("p2p: {} ({}) does not speak {}; closing", addr, direction, PROTO));
                    break;
                }
                if f[2] != genesis().block_hash {
                    log::warn(&format!("p2p: {} ({}) has a different genesis block; closing", addr, direction));
                    break;
                }
                let peer_id = f[1].to_string();
                if peer_id == node.peer_id {
                    end = End::SelfConnection;
                    break;
                }
                if !valid_peer_id(&peer_id) {
                    break;
                }
                let (sid, first) = node.add_peer(&peer_id, addr, direction, tx.clone());
                if first {
                    log::info(&format!("peer connected: {} ({}, {})", peer_id, addr, direction));
                    node.event("peer_connected", format!("{} ({}, {})", peer_id, addr, direction));
                }
                s.session = Some(sid);
                s.peer_id = Some(peer_id);
                s.peer_tip = (f[3].parse().unwrap_or(0), f[4].to_string());
                maybe_request(node, &mut s, &tx);
            }
            "TIP" => {
                if let Some((h, hash)) = rest.split_once(' ') {
                    if let Ok(h) = h.parse() {
                        s.peer_tip = (h, hash.to_string());
                        maybe_request(node, &mut s, &tx);
                    }
                }
            }
            "BLOCK" => {
                let peer = s.peer_id.clone().unwrap_or_default();
                match Block::parse(rest) {
                    Ok(b) => {
                        // peers gossip their new tip
                        s.peer_tip = (b.index, b.block_hash.clone());
                        match node.offer(std::slice::from_ref(&b), &peer) {
                            Accept::NoParent => maybe_request(node, &mut s, &tx),
                            Accept::Invalid(e) => {
                                log::warn(&format!("p2p: invalid block #{} from peer {}: {}", b.index, short(&peer, 16), e));
                                s.bad_tip = Some(b.block_hash.clone());
                            }
                            Accept::Adopted | Accept::NotBetter => {}
                        }
                    }
                    Err(e) => log::warn(&format!("p2p: unreadable block from peer {}: {}", short(&peer, 16), e)),
                }
            }
            "GETBLOCKS" => {
                let loc = parse_locator(rest);
                let (blocks, h, hash) = {
                    let st = lock(&node.state);
                    (st.chain.blocks_after(&loc, SYNC_MAX_BLOCKS, SYNC_MAX_BYTES), st.chain.height(), st.chain.tip().block_hash.clone())
                };
                let arr = Json::Arr(blocks.iter().map(|b| b.to_json()).collect());
                if tx.send(format!("BLOCKS {} {} {}", h, hash, arr)).is_err() {
                    break;
                }
            }
            "BLOCKS" => {
                s.inflight = None;
                let peer = s.peer_id.clone().unwrap_or_default();
                let mut f = rest.splitn(3, ' ');
                let (h, hash, payload) = match (f.next(), f.next(), f.next()) {
                    (Some(h), Some(hash), Some(p)) => (h.parse::<u64>().unwrap_or(0), hash.to_string(), p),
                    _ => continue,
                };
                s.peer_tip = (h, hash.clone());
                let blocks = match parse_blocks(payload) {
                    Ok(b) => b,
                    Err(e) => {
                        log::warn(&format!("p2p: unusable BLOCKS from peer {}: {}", short(&peer, 16), e));
                        s.bad_tip = Some(hash);
                        s.pending.clear();
                        continue;
                    }
                };
                if blocks.is_empty() {
                    continue;
                }
                let extends_pending = s.pending.last().map_or(false, |last| {
                    blocks[0].index == last.index + 1 && blocks[0].previous_hash == last.block_hash
                });
                if extends_pending && s.pending.len() + blocks.len() <= MAX_PENDING {
                    s.pending.extend(blocks);
                } else {
                    s.pending = blocks;
                }
                match node.offer(&s.pending, &peer) {
                    Accept::Adopted => s.pending.clear(),
                    Accept::NotBetter => {
                        // a deep fork arrives in several batches: keep what we have
                        // while the peer still has more
                        let last = s.pending.last().map(|b| b.index).unwrap_or(0);
                        if last >= h {
                            s.pending.clear();
                        }
                    }
                    Accept::NoParent => s.pending.clear(),
                    Accept::Invalid(e) => {
                        log::warn(&format!("p2p: invalid chain from peer {}: {}", short(&peer, 16), e));
                        s.bad_tip = Some(hash);
                        s.pending.clear();
                    }
                }
                maybe_request(node, &mut s, &tx);
            }
            _ => {} // unknown messages are ignored (forward compatibility)
        }
    }

    if let Some(sid) = s.session {
        if node.remove_peer(sid) {
            let peer_id = s.peer_id.clone().unwrap_or_default();
            log::info(&format!("peer disconnected: {} ({}, {})", peer_id, addr, direction));
            node.event("peer_disconnected", format!("{} ({}, {})", peer_id, addr, direction));
        }
    }
    drop(tx);
    let _ = stream.shutdown(Shutdown::Both);
    let _ = writer.join();
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locator_parsing() {
        let l = parse_locator("5:aa,3:bb,x:cc,0:dd,junk");
        assert_eq!(l, vec![(5, "aa".to_string()), (3, "bb".to_string()), (0, "dd".to_string())]);
    }

    #[test]
    fn blocks_payload() {
        let g = genesis();
        let seg = crate::chain::tests::extend(&[g], 3, "");
        let arr = Json::Arr(seg.iter().map(|b| b.to_json()).collect()).to_string();
        assert_eq!(parse_blocks(&arr).unwrap(), seg);
        let gap = Json::Arr(vec![seg[0].to_json(), seg[2].to_json()]).to_string();
        assert!(parse_blocks(&gap).is_err());
        assert!(parse_blocks("{}").is_err());
    }
}
