//! Signals, as the real node handles them: SIGINT (Ctrl-C) runs the clean
//! shutdown path (`Node::shutdown`: "shutting down", flush, exit 0); SIGTERM
//! (systemd's default stop signal) keeps the default action and ends the
//! process at once, without that path. Blocks are fsync'd as they are made,
//! so the chain survives either way.
//!
//! Standard library only: `signal(2)`, `pipe(2)` and `write(2)` come from the
//! C library that std links anyway. The handler only writes one byte to a
//! pipe (async-signal-safe); a thread blocked on the other end does the work.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::io::FromRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

// The same numbers on every Linux architecture.
pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;
const SIG_DFL: usize = 0;
const SIG_ERR: usize = usize::MAX;

extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn pipe(fds: *mut i32) -> i32;
    fn write(fd: i32, buf: *const u8, count: usize) -> isize;
}

static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sigint(_signum: i32) {
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is one valid byte.
        unsafe {
            write(fd, &byte, 1);
        }
    }
}

/// Install the handlers. Returns the read end of the wake-up pipe: one byte
/// arrives there for every SIGINT.
pub fn install() -> io::Result<File> {
    let mut fds = [-1i32; 2];
    // SAFETY: pipe(2) writes two descriptors into the array.
    if unsafe { pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    WAKE_FD.store(fds[1], Ordering::SeqCst);
    // SAFETY: fds[0] is a fresh descriptor owned by nobody else.
    let reader = unsafe { File::from_raw_fd(fds[0]) };
    let handler = on_sigint as extern "C" fn(i32) as usize;
    // SAFETY: glibc's and musl's signal(2) install a persistent handler with
    // SA_RESTART; SIG_DFL for SIGTERM undoes an inherited "ignore".
    unsafe {
        if signal(SIGINT, handler) == SIG_ERR {
            return Err(io::Error::last_os_error());
        }
        if signal(SIGTERM, SIG_DFL) == SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(reader)
}

/// Block until a SIGINT arrives (or the pipe fails: then never return).
pub fn wait_for_sigint(reader: &mut File) {
    let mut buf = [0u8; 16];
    loop {
        match reader.read(&mut buf) {
            Ok(n) if n > 0 => return,
            Err(ref e) if e.kind() == io::ErrorKind::Interrupted => continue,
            _ => loop {
                std::thread::park();
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        fn raise(sig: i32) -> i32;
    }

    #[test]
    fn sigint_wakes_the_waiting_thread() {
        let mut reader = install().unwrap();
        // SAFETY: raising SIGINT in this process runs on_sigint (installed above).
        assert_eq!(unsafe { raise(SIGINT) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            wait_for_sigint(&mut reader);
            let _ = tx.send(());
        });
        assert!(rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok());
    }
}
