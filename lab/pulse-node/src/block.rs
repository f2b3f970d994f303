//! Blocks and heartbeats. A block's hash is the SHA-256 of its canonical JSON
//! without the `block_hash` member; every derived field (n_live, total_weight,
//! security, bio_entropy) is recomputed when a block is verified.

use crate::json::{self, num_f, num_u, obj, string, Json};
use crate::sha256::{self, sha256_hex};
use crate::tx::{Transaction, MAX_TX_PER_BLOCK};

/// Fixed genesis timestamp (2023-11-14T22:13:20Z): every node has the same genesis.
pub const GENESIS_TIMESTAMP: u64 = 1_700_000_000_000;
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
pub const MAX_HEARTBEATS_PER_BLOCK: usize = 5000;
pub const SIM_DEVICES: usize = 25;

#[derive(Clone, Debug, PartialEq)]
pub struct Heartbeat {
    pub device_id: String,
    pub heart_rate: u32,
    pub timestamp: u64,
}

impl Heartbeat {
    pub fn to_json(&self) -> Json {
        obj(vec![
            ("device_id", string(&self.device_id)),
            ("heart_rate", num_u(self.heart_rate as u64)),
            ("timestamp", num_u(self.timestamp)),
        ])
    }

    pub fn from_json(j: &Json) -> Result<Heartbeat, String> {
        let device_id = j.get("device_id").and_then(|v| v.as_str()).ok_or("heartbeat without device_id")?;
        let heart_rate = j.get("heart_rate").and_then(|v| v.as_u64()).ok_or("heartbeat without heart_rate")?;
        let timestamp = j.get("timestamp").and_then(|v| v.as_u64()).ok_or("heartbeat without timestamp")?;
        let hb = Heartbeat { device_id: device_id.to_string(), heart_rate: heart_rate.min(u32::MAX as u64) as u32, timestamp };
        hb.check()?;
        Ok(hb)
    }

    pub fn check(&self) -> Result<(), String> {
        if self.device_id.is_empty() || self.device_id.len() > 128 || self.device_id.chars().any(|c| c.is_control()) {
            return Err("invalid device_id".into());
        }
        if self.heart_rate == 0 || self.heart_rate > 300 {
            return Err("heart_rate out of range (1..300)".into());
        }
        Ok(())
    }

    pub fn is_simulated(&self) -> bool {
        self.device_id.starts_with("sim-device-")
    }

    /// Weight of one heartbeat: heart rate relative to 72 bpm, rounded to 1/1000.
    pub fn weight(&self) -> f64 {
        round_to(self.heart_rate as f64 / 72.0, 1000.0)
    }
}

fn round_to(x: f64, scale: f64) -> f64 {
    (x * scale).round() / scale
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub index: u64,
    pub timestamp: u64,
    pub previous_hash: String,
    pub heartbeats: Vec<Heartbeat>,
    pub transactions: Vec<Json>,
    pub n_live: u64,
    pub total_weight: f64,
    pub security: f64,
    pub bio_entropy: String,
    pub block_hash: String,
}

impl Block {
    /// Build a block and compute its derived fields and hash.
    pub fn build(index: u64, timestamp: u64, previous_hash: &str, heartbeats: Vec<Heartbeat>, transactions: Vec<Json>) -> Block {
        let n_live = heartbeats.len() as u64;
        let total_weight = round_to(heartbeats.iter().map(|h| h.weight()).sum::<f64>(), 1000.0);
        let security = round_to(total_weight * (n_live as f64).sqrt(), 1_000_000.0);
        let mut ent = sha256::Sha256::new();
        ent.update(previous_hash.as_bytes());
        for h in &heartbeats {
            ent.update(format!("|{}:{}:{}", h.device_id, h.heart_rate, h.timestamp).as_bytes());
        }
        let bio_entropy = sha256::hex(&ent.finish());
        let mut b = Block {
            index,
            timestamp,
            previous_hash: previous_hash.to_string(),
            heartbeats,
            transactions,
            n_live,
            total_weight,
            security,
            bio_entropy,
            block_hash: String::new(),
        };
        b.block_hash = b.compute_hash();
        b
    }

    fn members_without_hash(&self) -> Vec<(&'static str, Json)> {
        vec![
            ("index", num_u(self.index)),
            ("timestamp", num_u(self.timestamp)),
            ("previous_hash", string(&self.previous_hash)),
            ("heartbeats", Json::Arr(self.heartbeats.iter().map(|h| h.to_json()).collect())),
            ("transactions", Json::Arr(self.transactions.clone())),
            ("n_live", num_u(self.n_live)),
            ("total_weight", num_f(self.total_weight)),
            ("security", num_f(self.security)),
            ("bio_entropy", string(&self.bio_entropy)),
        ]
    }

    pub fn compute_hash(&self) -> String {
        sha256_hex(obj(self.members_without_hash()).to_string().as_bytes())
    }

    pub fn to_json(&self) -> Json {
        let mut m = self.members_without_hash();
        m.push(("block_hash", string(&self.block_hash)));
        obj(m)
    }

    /// Parse a block and check that it is self-consistent (derived fields and hash).
    pub fn from_json(j: &Json) -> Result<Block, String> {
        let u = |k: &str| j.get(k).and_then(|v| v.as_u64()).ok_or(format!("block: missing or invalid '{}'", k));
        let s = |k: &str| j.get(k).and_then(|v| v.as_str()).ok_or(format!("block: missing or invalid '{}'", k));
        let f = |k: &str| j.get(k).and_then(|v| v.as_f64()).ok_or(format!("block: missing or invalid '{}'", k));
        let hbs = j.get("heartbeats").and_then(|v| v.as_array()).ok_or("block: missing heartbeats")?;
        if hbs.len() > MAX_HEARTBEATS_PER_BLOCK {
            return Err("block: too many heartbeats".into());
        }
        let mut heartbeats = Vec::with_capacity(hbs.len());
        for h in hbs {
            heartbeats.push(Heartbeat::from_json(h)?);
        }
        let transactions = j.get("transactions").and_then(|v| v.as_array()).ok_or("block: missing transactions")?.clone();
        if transactions.len() > MAX_TX_PER_BLOCK {
            return Err("block: too many transactions".into());
        }
        for t in &transactions {
            Transaction::from_block_json(t)?;
        }
        let b = Block {
            index: u("index")?,
            timestamp: u("timestamp")?,
            previous_hash: s("previous_hash")?.to_string(),
            heartbeats,
            transactions,
            n_live: u("n_live")?,
            total_weight: f("total_weight")?,
            security: f("security")?,
            bio_entropy: s("bio_entropy")?.to_string(),
            block_hash: s("block_hash")?.to_string(),
        };
        b.verify()?;
        Ok(b)
    }

    pub fn parse(text: &str) -> Result<Block, String> {
        Block::from_json(&json::parse(text)?)
    }

    /// Derived fields and hash match the content.
    pub fn verify(&self) -> Result<(), String> {
        let expect = Block::build(self.index, self.timestamp, &self.previous_hash, self.heartbeats.clone(), self.transactions.clone());
        if expect.n_live != self.n_live
            || expect.total_weight != self.total_weight
            || expect.security != self.security
            || expect.bio_entropy != self.bio_entropy
        {
            return Err(format!("block #{}: derived fields do not match its heartbeats", self.index));
        }
        if expect.block_hash != self.block_hash {
            return Err(format!("block #{}: hash mismatch", self.index));
        }
        Ok(())
    }

    /// `self` may follow `parent`.
    pub fn check_link(&self, parent: &Block) -> Result<(), String> {
        if self.index != parent.index + 1 {
            return Err(format!("block #{} does not follow #{}", self.index, parent.index));
        }
        if self.previous_hash != parent.block_hash {
            return Err(format!("block #{}: previous_hash does not match block #{}", self.index, parent.index));
        }
        if self.timestamp <= parent.timestamp {
            return Err(format!("block #{}: timestamp not after its parent's", self.index));
        }
        Ok(())
    }
}

/// The genesis block: identical on every node.
pub fn genesis() -> Block {
    Block::build(0, GENESIS_TIMESTAMP, ZERO_HASH, Vec::new(), Vec::new())
}

#[cfg(test)]
pub fn is_genesis(b: &Block) -> bool {
    *b == genesis()
}

/// Deterministic synthetic heartbeats for the block after `previous_hash` in
/// slot `slot_time`: every node simulating on the same parent in the same slot
/// builds the same block, so simulating nodes do not fork needlessly.
pub fn simulated_heartbeats(previous_hash: &str, slot_time: u64, min_count: u64) -> Vec<Heartbeat> {
    let seed = sha256::digest(format!("{}:{}", previous_hash, slot_time).as_bytes());
    let base = 3 + (seed[0] as u64 % 5);
    let n = base.max(min_count).min(1000) as usize;
    let start = seed[1] as usize % SIM_DEVICES;
    (0..n)
        .map(|k| {
            // 7 is coprime with 25: the first 25 picks are distinct devices
            let dev = if n <= SIM_DEVICES { (start + k * 7) % SIM_DEVICES } else { k };
            Heartbeat {
                device_id: format!("sim-device-{:02}", dev + 1),
                heart_rate: 55 + (seed[(k + 2) % 32] as u32 % 50),
                timestamp: slot_time.saturating_sub((seed[(k + 5) % 32] as u64) * 3),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_is_fixed() {
        let g = genesis();
        assert_eq!(g, genesis());
        assert_eq!(g.index, 0);
        assert_eq!(g.previous_hash, ZERO_HASH);
        assert_eq!(g.block_hash.len(), 64);
        assert!(is_genesis(&g));
        // the hash covers the content, and genesis survives a JSON round trip
        assert_eq!(g.block_hash, g.compute_hash());
        assert_eq!(Block::parse(&g.to_json().to_string()).unwrap(), g);
    }

    #[test]
    fn json_round_trip_and_verify() {
        let g = genesis();
        let hbs = simulated_heartbeats(&g.block_hash, GENESIS_TIMESTAMP + 5000, 1);
        assert!(hbs.len() >= 3);
        let b = Block::build(1, GENESIS_TIMESTAMP + 5000, &g.block_hash, hbs, Vec::new());
        b.check_link(&g).unwrap();
        let text = b.to_json().to_string();
        let back = Block::parse(&text).unwrap();
        assert_eq!(back, b);
        // tampering is detected
        let tampered = text.replace(&format!("\"index\":{}", 1), "\"index\":2");
        assert!(Block::parse(&tampered).is_err());
        let mut c = b.clone();
        c.heartbeats[0].heart_rate += 1;
        assert!(c.verify().is_err());
    }

    #[test]
    fn blocks_carry_canonical_transactions() {
        let g = genesis();
        let t = Transaction::new("alice", "bob", 1.5, GENESIS_TIMESTAMP + 10, "sig").unwrap();
        let hbs = simulated_heartbeats(&g.block_hash, GENESIS_TIMESTAMP + 5000, 1);
        let b = Block::build(1, GENESIS_TIMESTAMP + 5000, &g.block_hash, hbs, vec![t.to_json()]);
        let text = b.to_json().to_string();
        assert_eq!(Block::parse(&text).unwrap(), b);
        // a transaction that is not in canonical form is refused, even with a matching block hash
        let mut odd = b.clone();
        odd.transactions = vec![json::parse(r#"{"anything":1}"#).unwrap()];
        odd.block_hash = odd.compute_hash();
        assert!(Block::parse(&odd.to_json().to_string()).is_err());
    }

    #[test]
    fn simulation_is_deterministic() {
        let a = simulated_heartbeats("abc", 1000, 1);
        assert_eq!(a, simulated_heartbeats("abc", 1000, 1));
        assert_ne!(a, simulated_heartbeats("abc", 2000, 1));
        let ids: std::collections::HashSet<_> = a.iter().map(|h| h.device_id.clone()).collect();
        assert_eq!(ids.len(), a.len());
        assert_eq!(simulated_heartbeats("abc", 1000, 40).len(), 40);
    }
}
