//! Small helpers: time, randomness, peer ids, poison-tolerant locks.

use std::io::Read;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::sha256;

/// Lock a mutex, recovering the data if another thread panicked while holding it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `n` random bytes from /dev/urandom (fallback: hashed clock, pid and std's random hasher keys).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(&mut out).is_ok() {
            return out;
        }
    }
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut seed = Vec::new();
    for i in 0..4u64 {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
        h.write_u32(std::process::id());
        h.write_u64(i);
        seed.extend_from_slice(&h.finish().to_le_bytes());
    }
    let mut out = Vec::with_capacity(n);
    let mut block = sha256::digest(&seed);
    while out.len() < n {
        out.extend_from_slice(&block);
        block = sha256::digest(&block);
    }
    out.truncate(n);
    out
}

const B58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

pub fn base58(bytes: &[u8]) -> String {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    let mut digits: Vec<u8> = Vec::new(); // base-58 digits, little endian
    for &b in &bytes[zeros..] {
        let mut carry = b as u32;
        for d in digits.iter_mut() {
            carry += (*d as u32) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut s = String::with_capacity(zeros + digits.len());
    for _ in 0..zeros {
        s.push('1');
    }
    for d in digits.iter().rev() {
        s.push(B58[*d as usize] as char);
    }
    s
}

/// A libp2p-looking peer id: base58 of the identity multihash of a (random)
/// protobuf-encoded Ed25519 public key, so it starts with "12D3KooW" like real ones.
pub fn new_peer_id() -> String {
    let mut raw = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    raw.extend_from_slice(&random_bytes(32));
    base58(&raw)
}

pub fn valid_peer_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// First `n` characters of an ASCII id or hash, for log lines.
pub fn short(s: &str, n: usize) -> &str {
    if s.len() > n && s.is_char_boundary(n) {
        &s[..n]
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base58_known() {
        assert_eq!(base58(b""), "");
        assert_eq!(base58(&[0, 0, 1]), "112");
        assert_eq!(base58(b"hello world"), "StV1DL6CwTryKyV");
    }

    #[test]
    fn peer_ids_look_like_libp2p() {
        let a = new_peer_id();
        let b = new_peer_id();
        assert!(a.starts_with("12D3KooW"), "{}", a);
        assert_eq!(a.len(), 52);
        assert_ne!(a, b);
        assert!(valid_peer_id(&a));
        assert!(!valid_peer_id("bad id"));
        assert!(!valid_peer_id(""));
    }
}
