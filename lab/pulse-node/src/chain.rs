//! The chain in memory, fork choice and statistics.
//!
//! Fork choice: the longer valid chain wins; at equal height the chain whose
//! tip hash is lower (as a hex string) wins. This is a total order on tips,
//! so all nodes that see the same chains pick the same one.

use std::collections::{BTreeMap, HashSet};

use crate::block::{genesis, Block};
use crate::json::{num_f, num_u, obj, string, Json};
use crate::tx::Transaction;

/// Blocks more than this far in the future (by the local clock) are refused.
pub const MAX_FUTURE_MS: u64 = 60_000;
pub const INITIAL_BLOCK_REWARD: f64 = 10.0;
pub const HALVING_INTERVAL: u64 = 100_000;

/// Is tip `a` better than tip `b`?
pub fn better(a_height: u64, a_hash: &str, b_height: u64, b_hash: &str) -> bool {
    a_height > b_height || (a_height == b_height && a_hash < b_hash)
}

/// What adopting a segment (consecutive blocks received from a peer) would do.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// The segment extends our tip: append these blocks.
    Append(Vec<Block>),
    /// The segment forks off below our tip and wins: drop our blocks from
    /// index `from` and put `blocks` there.
    Reorg { from: usize, blocks: Vec<Block> },
    /// Valid or not, it would not be better than what we have.
    NotBetter,
    /// Its first block's parent is not in our chain: ask the peer for more history.
    NoParent,
    Invalid(String),
}

/// One account of the (synthetic) ledger.
#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    pub balance: f64,
    /// Heartbeats of this account in the chain.
    pub heartbeats: u64,
    /// Timestamp (ms) of the latest block where the account appears.
    pub last_seen: u64,
}

impl Account {
    fn new() -> Account {
        Account { balance: 0.0, heartbeats: 0, last_seen: 0 }
    }
}

pub struct Chain {
    blocks: Vec<Block>,
    /// Every account that appears in the chain: heartbeat senders and
    /// recipients of applied transfers (sorted by id).
    accounts: BTreeMap<String, Account>,
    /// Ids of every transaction in the chain (applied or not).
    tx_ids: HashSet<String>,
    total_heartbeats: u64,
    total_security: f64,
    cumulative_weight: f64,
}

impl Chain {
    /// `blocks` must be a valid chain starting at genesis (as loaded by storage).
    pub fn new(blocks: Vec<Block>) -> Chain {
        let blocks = if blocks.is_empty() { vec![genesis()] } else { blocks };
        let mut c = Chain {
            blocks,
            accounts: BTreeMap::new(),
            tx_ids: HashSet::new(),
            total_heartbeats: 0,
            total_security: 0.0,
            cumulative_weight: 0.0,
        };
        c.recompute();
        c
    }

    fn recompute(&mut self) {
        self.accounts.clear();
        self.tx_ids.clear();
        self.total_heartbeats = 0;
        self.total_security = 0.0;
        self.cumulative_weight = 0.0;
        let blocks = std::mem::take(&mut self.blocks);
        for b in &blocks {
            self.account_for(b);
        }
        self.blocks = blocks;
    }

    /// Apply one block to the ledger and the statistics. Deterministic, so
    /// every node computes the same balances from the same chain:
    /// 1. the block reward (10, halving every 100 000 blocks) is shared among
    ///    the block's heartbeats in proportion to their weight;
    /// 2. then its transactions move `amount` from `from` to `to`, in order;
    ///    one whose sender's balance is short at that point, or whose tx_id
    ///    already appeared earlier in the chain, has no effect.
    fn account_for(&mut self, b: &Block) {
        let reward = if b.index == 0 { 0.0 } else { reward_for_epoch((b.index - 1) / HALVING_INTERVAL) };
        let weights: f64 = b.heartbeats.iter().map(|h| h.weight()).sum();
        for h in &b.heartbeats {
            let a = self.accounts.entry(h.device_id.clone()).or_insert_with(Account::new);
            a.heartbeats += 1;
            a.last_seen = a.last_seen.max(b.timestamp);
            if weights > 0.0 {
                a.balance += reward * h.weight() / weights;
            }
        }
        for tj in &b.transactions {
            let t = match Transaction::from_block_json(tj) {
                Ok(t) => t,
                Err(_) => continue, // blocks are checked when received or loaded
            };
            if !self.tx_ids.insert(t.tx_id.clone()) {
                continue; // a replay of an earlier transaction
            }
            let covered = self.accounts.get(&t.from).map_or(false, |a| a.balance >= t.amount);
            if !covered {
                continue;
            }
            if let Some(a) = self.accounts.get_mut(&t.from) {
                a.balance -= t.amount;
                a.last_seen = a.last_seen.max(b.timestamp);
            }
            let r = self.accounts.entry(t.to.clone()).or_insert_with(Account::new);
            r.balance += t.amount;
            r.last_seen = r.last_seen.max(b.timestamp);
        }
        self.total_heartbeats += b.heartbeats.len() as u64;
        self.total_security += b.security;
        self.cumulative_weight += b.total_weight;
    }

    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn tip(&self) -> &Block {
        self.blocks.last().expect("chain always has genesis")
    }

    /// Index of the latest block (genesis is height 0).
    pub fn height(&self) -> u64 {
        self.tip().index
    }

    pub fn get(&self, index: u64) -> Option<&Block> {
        if index < self.blocks.len() as u64 {
            Some(&self.blocks[index as usize])
        } else {
            None
        }
    }

    pub fn active_accounts(&self) -> usize {
        self.accounts.len()
    }

    /// Balance of one account; an account the chain does not know has 0.
    pub fn balance(&self, pubkey: &str) -> f64 {
        self.accounts.get(pubkey).map_or(0.0, |a| a.balance)
    }

    #[cfg(test)]
    pub fn account(&self, pubkey: &str) -> Option<&Account> {
        self.accounts.get(pubkey)
    }

    /// `/accounts` data: every known account, sorted by id.
    pub fn accounts_json(&self) -> Json {
        Json::Arr(
            self.accounts
                .iter()
                .map(|(k, a)| {
                    obj(vec![
                        ("pubkey", string(k)),
                        ("balance", num_f(round6(a.balance))),
                        ("heartbeats", num_u(a.heartbeats)),
                        ("last_seen", num_u(a.last_seen)),
                    ])
                })
                .collect(),
        )
    }

    /// Is this transaction id in the chain already?
    pub fn has_tx(&self, tx_id: &str) -> bool {
        self.tx_ids.contains(tx_id)
    }

    /// Append a block already checked to follow the tip.
    pub fn push(&mut self, b: Block) {
        debug_assert!(b.check_link(self.tip()).is_ok());
        self.account_for(&b);
        self.blocks.push(b);
    }

    /// Replace everything from index `from` with `new`; returns the removed blocks.
    pub fn replace_from(&mut self, from: usize, new: Vec<Block>) -> Vec<Block> {
        let removed = self.blocks.split_off(from.max(1));
        self.blocks.extend(new);
        self.recompute();
        removed
    }

    /// Decide what to do with `seg`, consecutive blocks received from a peer.
    pub fn plan(&self, seg: &[Block], now_ms: u64) -> Plan {
        let first = match seg.first() {
            Some(b) => b,
            None => return Plan::NotBetter,
        };
        let last = seg.last().unwrap_or(first);
        if !better(last.index, &last.block_hash, self.height(), &self.tip().block_hash) {
            return Plan::NotBetter;
        }
        if first.index == 0 {
            return Plan::Invalid("segment starts with a second genesis".into());
        }
        let k = first.index as usize;
        if k > self.blocks.len() || first.previous_hash != self.blocks[k - 1].block_hash {
            return Plan::NoParent;
        }
        let mut parent = &self.blocks[k - 1];
        for b in seg {
            if let Err(e) = b.verify().and_then(|_| b.check_link(parent)) {
                return Plan::Invalid(e);
            }
            if b.timestamp > now_ms + MAX_FUTURE_MS {
                return Plan::Invalid(format!("block #{} is too far in the future", b.index));
            }
            parent = b;
        }
        let mut d = 0;
        while d < seg.len() && k + d < self.blocks.len() && self.blocks[k + d].block_hash == seg[d].block_hash {
            d += 1;
        }
        if k + d == self.blocks.len() {
            Plan::Append(seg[d..].to_vec())
        } else {
            Plan::Reorg { from: k + d, blocks: seg[d..].to_vec() }
        }
    }

    /// Block locator for sync requests: (index, hash) of the tip, the 10 blocks
    /// below it, then exponentially sparser, always ending with genesis.
    pub fn locator(&self) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut i = self.blocks.len() as i64 - 1;
        let mut step = 1i64;
        while i > 0 {
            out.push((i as u64, self.blocks[i as usize].block_hash.clone()));
            if out.len() >= 10 {
                step *= 2;
            }
            i -= step;
        }
        out.push((0, self.blocks[0].block_hash.clone()));
        out
    }

    /// Answer to a sync request: the blocks after the first locator entry we
    /// also have, at most `max_blocks` of them and about `max_bytes` of JSON.
    pub fn blocks_after(&self, locator: &[(u64, String)], max_blocks: usize, max_bytes: usize) -> Vec<Block> {
        let start = locator
            .iter()
            .find(|(i, h)| self.get(*i).map_or(false, |b| &b.block_hash == h))
            .map(|(i, _)| *i as usize + 1)
            .unwrap_or(1);
        let mut out = Vec::new();
        let mut bytes = 0;
        for b in self.blocks.iter().skip(start).take(max_blocks) {
            bytes += 300 + b.heartbeats.len() * 80;
            out.push(b.clone());
            if bytes > max_bytes {
                break;
            }
        }
        out
    }

    pub fn total_minted(&self) -> f64 {
        // sum of rewards of blocks 1..=height, halving every HALVING_INTERVAL blocks
        let h = self.height();
        let mut total = 0.0;
        let mut epoch = 0u64;
        while epoch * HALVING_INTERVAL < h && epoch < 64 {
            let first = epoch * HALVING_INTERVAL + 1;
            let last = ((epoch + 1) * HALVING_INTERVAL).min(h);
            total += (last + 1 - first) as f64 * reward_for_epoch(epoch);
            epoch += 1;
        }
        total
    }

    /// `/stats` data. Synthetic economics: reward 10 per block, halving every 100 000 blocks.
    pub fn stats(&self, interval_ms: u64) -> Json {
        let h = self.height();
        let epoch = h / HALVING_INTERVAL;
        let reward = reward_for_epoch(epoch);
        let minted = self.total_minted();
        // recent window for rates
        let window: Vec<&Block> = self.blocks.iter().skip(1).rev().take(20).collect();
        let (avg_block_time, tps) = if window.len() >= 2 {
            let newest = window[0];
            let oldest = window[window.len() - 1];
            let span = newest.timestamp.saturating_sub(oldest.timestamp) as f64;
            let avg = span / (window.len() - 1) as f64;
            let hbs: usize = window[..window.len() - 1].iter().map(|b| b.heartbeats.len()).sum();
            let tps = if span > 0.0 { hbs as f64 / (span / 1000.0) } else { 0.0 };
            (avg, tps)
        } else {
            (0.0, 0.0)
        };
        let blocks_per_year = 365.0 * 24.0 * 3600.0 * 1000.0 / interval_ms.max(1) as f64;
        let inflation = if minted > 0.0 { reward * blocks_per_year / minted * 100.0 } else { 0.0 };
        obj(vec![
            ("chain_length", num_u(self.blocks.len() as u64)),
            ("total_minted", num_f(round6(minted))),
            ("active_accounts", num_u(self.accounts.len() as u64)),
            ("current_tps", num_f(round6(tps))),
            ("avg_block_time", num_f(round6(avg_block_time))),
            ("total_security", num_f(round6(self.total_security))),
            ("current_block_reward", num_f(reward)),
            ("halving_epoch", num_u(epoch)),
            ("cumulative_weight", num_f(round6(self.cumulative_weight))),
            ("inflation_rate", num_f(round6(inflation))),
        ])
    }

    #[cfg(test)]
    pub fn total_heartbeats(&self) -> u64 {
        self.total_heartbeats
    }
}

fn reward_for_epoch(epoch: u64) -> f64 {
    if epoch >= 64 {
        0.0
    } else {
        INITIAL_BLOCK_REWARD / (1u64 << epoch) as f64
    }
}

pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::block::{simulated_heartbeats, Heartbeat};
    use crate::tx::Transaction;

    /// A chain of `n` blocks after `parent_chain`'s tip, made distinct by `salt`.
    pub fn extend(base: &[Block], n: usize, salt: &str) -> Vec<Block> {
        let mut out: Vec<Block> = Vec::new();
        for _ in 0..n {
            let parent = out.last().or(base.last()).unwrap().clone();
            let ts = parent.timestamp + 1000;
            let mut hbs = simulated_heartbeats(&parent.block_hash, ts, 1);
            if !salt.is_empty() {
                hbs.push(Heartbeat { device_id: format!("dev-{}", salt), heart_rate: 70, timestamp: ts });
            }
            out.push(Block::build(parent.index + 1, ts, &parent.block_hash, hbs, Vec::new()));
        }
        out
    }

    const NOW: u64 = u64::MAX / 2;

    #[test]
    fn better_is_a_total_order() {
        assert!(better(5, "ff", 4, "00"));
        assert!(!better(4, "00", 5, "ff"));
        assert!(better(5, "0a", 5, "0b"));
        assert!(!better(5, "0b", 5, "0a"));
        assert!(!better(5, "0a", 5, "0a"));
    }

    #[test]
    fn append_extending_segment() {
        let mut c = Chain::new(vec![genesis()]);
        let seg = extend(c.blocks(), 3, "");
        match c.plan(&seg, NOW) {
            Plan::Append(bs) => {
                assert_eq!(bs.len(), 3);
                for b in bs {
                    c.push(b);
                }
            }
            other => panic!("{:?}", other),
        }
        assert_eq!(c.height(), 3);
        // the same segment again is not better
        assert_eq!(c.plan(&seg, NOW), Plan::NotBetter);
        // an overlapping segment appends only the new part
        let more = extend(&seg, 2, "");
        let mut overlap = seg[1..].to_vec();
        overlap.extend(more.clone());
        assert_eq!(c.plan(&overlap, NOW), Plan::Append(more));
    }

    #[test]
    fn longer_fork_wins_and_shorter_loses() {
        let g = vec![genesis()];
        let common = extend(&g, 2, "");
        let mut ours_full = g.clone();
        ours_full.extend(common.clone());
        let ours_suffix = extend(&ours_full, 2, "a");
        ours_full.extend(ours_suffix);
        let c = Chain::new(ours_full.clone());
        assert_eq!(c.height(), 4);

        let mut base = g.clone();
        base.extend(common.clone());
        let theirs = extend(&base, 3, "b"); // heights 3..5
        match c.plan(&theirs, NOW) {
            Plan::Reorg { from, blocks } => {
                assert_eq!(from, 3);
                assert_eq!(blocks, theirs);
            }
            other => panic!("{:?}", other),
        }
        let shorter = extend(&base, 1, "c");
        assert_eq!(c.plan(&shorter, NOW), Plan::NotBetter);
    }

    #[test]
    fn equal_height_lower_hash_wins() {
        let g = vec![genesis()];
        let a = extend(&g, 1, "a");
        let b = extend(&g, 1, "b");
        let (low, high) = if a[0].block_hash < b[0].block_hash { (a, b) } else { (b, a) };
        let mut chain_high = g.clone();
        chain_high.extend(high.clone());
        let c = Chain::new(chain_high);
        assert!(matches!(c.plan(&low, NOW), Plan::Reorg { from: 1, .. }));
        let mut chain_low = g.clone();
        chain_low.extend(low);
        let c = Chain::new(chain_low);
        assert_eq!(c.plan(&high, NOW), Plan::NotBetter);
    }

    #[test]
    fn reorg_replaces_suffix_and_recomputes() {
        let g = vec![genesis()];
        let ours = extend(&g, 3, "mine");
        let mut full = g.clone();
        full.extend(ours);
        let mut c = Chain::new(full);
        assert!(c.active_accounts() > 0);
        let theirs = extend(&g, 4, "theirs");
        let (from, blocks) = match c.plan(&theirs, NOW) {
            Plan::Reorg { from, blocks } => (from, blocks),
            other => panic!("{:?}", other),
        };
        let removed = c.replace_from(from, blocks);
        assert_eq!(removed.len(), 3);
        assert_eq!(c.height(), 4);
        assert_eq!(c.tip(), theirs.last().unwrap());
        assert!(removed.iter().all(|b| b.heartbeats.iter().any(|h| h.device_id == "dev-mine")));
        let fresh = Chain::new(c.blocks().to_vec());
        assert_eq!(fresh.active_accounts(), c.active_accounts());
        assert_eq!(fresh.total_heartbeats(), c.total_heartbeats());
    }

    #[test]
    fn unknown_parent_and_invalid_blocks() {
        let g = vec![genesis()];
        let c = Chain::new(g.clone());
        let seg = extend(&g, 5, "x");
        assert_eq!(c.plan(&seg[2..], NOW), Plan::NoParent);
        let mut bad = seg.clone();
        bad[3].heartbeats[0].heart_rate += 1; // hash no longer matches
        assert!(matches!(c.plan(&bad, NOW), Plan::Invalid(_)));
        let mut broken_link = seg.clone();
        broken_link.remove(2);
        assert!(matches!(c.plan(&broken_link, NOW), Plan::Invalid(_)));
        // a block from the far future is refused
        assert!(matches!(c.plan(&seg, seg[0].timestamp - MAX_FUTURE_MS - 1), Plan::Invalid(_)));
    }

    #[test]
    fn locator_and_blocks_after_find_the_fork_point() {
        let g = vec![genesis()];
        let common = extend(&g, 30, "");
        let mut base = g.clone();
        base.extend(common);
        let mut a = base.clone();
        a.extend(extend(&base, 5, "a"));
        let mut b = base.clone();
        b.extend(extend(&base, 8, "b"));
        let ca = Chain::new(a);
        let cb = Chain::new(b);
        let loc = ca.locator();
        assert_eq!(loc[0].0, 35);
        assert_eq!(loc.last().unwrap().0, 0);
        let answer = cb.blocks_after(&loc, 500, 1 << 20);
        // the fork point (30) is found exactly because the locator is dense near the tip
        assert_eq!(answer.first().unwrap().index, 31);
        assert_eq!(answer.last().unwrap().index, 38);
        assert!(matches!(ca.plan(&answer, NOW), Plan::Reorg { from: 31, .. }));
        // limits
        assert_eq!(cb.blocks_after(&[(0, genesis().block_hash)], 10, 1 << 20).len(), 10);
    }

    /// `extend` with given transactions in the last block.
    fn with_txs(base: &[Block], txs: Vec<Json>) -> Block {
        let parent = base.last().unwrap();
        let ts = parent.timestamp + 1000;
        let hbs = vec![
            Heartbeat { device_id: "alice".into(), heart_rate: 72, timestamp: ts },
            Heartbeat { device_id: "bob".into(), heart_rate: 144, timestamp: ts },
        ];
        Block::build(parent.index + 1, ts, &parent.block_hash, hbs, txs)
    }

    #[test]
    fn ledger_rewards_and_transfers() {
        let mut c = Chain::new(vec![genesis()]);
        // block 1: reward 10 shared by weight: alice 72 bpm (1), bob 144 bpm (2)
        let b1 = with_txs(c.blocks(), Vec::new());
        c.push(b1);
        assert!((c.balance("alice") - 10.0 / 3.0).abs() < 1e-9);
        assert!((c.balance("bob") - 20.0 / 3.0).abs() < 1e-9);
        assert_eq!(c.balance("nobody"), 0.0);
        assert!(c.account("nobody").is_none());
        // block 2: bob pays carol 5 (covered), alice tries 100 (not covered: no effect),
        // and a replay of bob's transfer has no effect either
        let pay = Transaction::new("bob", "carol", 5.0, 1, "sig").unwrap();
        let too_much = Transaction::new("alice", "carol", 100.0, 2, "sig").unwrap();
        let b2 = with_txs(c.blocks(), vec![pay.to_json(), too_much.to_json()]);
        c.push(b2);
        let b3 = with_txs(c.blocks(), vec![pay.to_json()]);
        c.push(b3);
        assert!(c.has_tx(&pay.tx_id) && c.has_tx(&too_much.tx_id));
        assert!((c.balance("carol") - 5.0).abs() < 1e-9);
        assert!((c.balance("alice") - 10.0).abs() < 1e-9);
        assert!((c.balance("bob") - (20.0 - 5.0)).abs() < 1e-9);
        assert_eq!(c.active_accounts(), 3);
        let carol = c.account("carol").unwrap();
        assert_eq!(carol.heartbeats, 0);
        assert_eq!(carol.last_seen, c.get(2).unwrap().timestamp);
        // balances add up to what was minted
        let sum: f64 = ["alice", "bob", "carol"].iter().map(|k| c.balance(k)).sum();
        assert!((sum - c.total_minted()).abs() < 1e-9);
        // the same ledger from scratch (as after a restart or a reorg)
        let fresh = Chain::new(c.blocks().to_vec());
        assert_eq!(fresh.accounts_json(), c.accounts_json());
        let list = c.accounts_json();
        let ids: Vec<&str> = list.as_array().unwrap().iter().map(|a| a.get("pubkey").unwrap().as_str().unwrap()).collect();
        assert_eq!(ids, vec!["alice", "bob", "carol"]);
        assert!(!list.to_string().contains("null"));
    }

    #[test]
    fn stats_shape() {
        let g = vec![genesis()];
        let mut full = g.clone();
        full.extend(extend(&g, 5, ""));
        let c = Chain::new(full);
        let s = c.stats(1000);
        assert_eq!(s.get("chain_length").unwrap().as_u64(), Some(6));
        assert_eq!(s.get("total_minted").unwrap().as_f64(), Some(50.0));
        assert_eq!(s.get("avg_block_time").unwrap().as_f64(), Some(1000.0));
        assert_eq!(s.get("halving_epoch").unwrap().as_u64(), Some(0));
        for k in ["current_tps", "total_security", "current_block_reward", "cumulative_weight", "inflation_rate", "active_accounts"] {
            assert!(s.get(k).is_some(), "{}", k);
        }
    }
}
