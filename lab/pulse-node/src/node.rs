//! Shared node state: chain + storage + heartbeat and transaction pools,
//! events, connected peers, rate limiter; block production and adoption of
//! peers' blocks; the clean shutdown (SIGINT).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::SyncSender;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::block::{simulated_heartbeats, Block, Heartbeat, MAX_HEARTBEATS_PER_BLOCK};
use crate::chain::{Chain, Plan};
use crate::config::Config;
use crate::json::{num_u, obj, string, Json};
use crate::log;
use crate::storage::Storage;
use crate::tx::{Transaction, MAX_TX_PER_BLOCK};
use crate::util::{lock, new_peer_id, now_ms, short};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const MAX_POOL: usize = 10_000;
pub const MAX_TX_POOL: usize = 10_000;
pub const MAX_EVENTS: usize = 1000;

pub struct State {
    pub chain: Chain,
    pub storage: Option<Storage>,
    pub pool: Vec<Heartbeat>,
    /// Submitted transactions waiting for a block, in canonical form.
    pub tx_pool: Vec<Transaction>,
    data_dir: String,
}

impl State {
    fn storage_failed(&mut self, e: std::io::Error) {
        log::error(&in_memory_message(&self.data_dir, &e.to_string()));
        self.storage = None;
    }

    fn persist_append(&mut self, blocks: &[Block]) {
        let res = match self.storage.as_mut() {
            Some(s) => s.append(blocks),
            None => return,
        };
        if let Err(e) = res {
            self.storage_failed(e);
        }
    }

    fn persist_rewrite(&mut self, keep: usize, new: &[Block]) {
        let res = match self.storage.as_mut() {
            Some(s) => s.rewrite(&[&self.chain.blocks()[..keep], new]),
            None => return,
        };
        if let Err(e) = res {
            self.storage_failed(e);
        }
    }
}

/// The exact text logged (level ERROR) when the data dir cannot be used.
pub fn in_memory_message(data_dir: &str, err: &str) -> String {
    format!(
        "storage error: cannot use data dir '{}': {}; falling back to in-memory mode (nothing will persist)",
        data_dir, err
    )
}

pub struct Event {
    pub id: u64,
    pub timestamp: u64,
    pub kind: &'static str,
    pub message: String,
}

impl Event {
    pub fn to_json(&self) -> Json {
        obj(vec![
            ("id", num_u(self.id)),
            ("timestamp", num_u(self.timestamp)),
            ("kind", string(self.kind)),
            ("message", string(&self.message)),
        ])
    }
}

pub struct Events {
    next_id: u64,
    pub ring: VecDeque<Event>,
}

pub struct PeerSession {
    pub session: u64,
    pub peer_id: String,
    pub addr: SocketAddr,
    pub direction: &'static str,
    pub tx: SyncSender<String>,
}

pub struct Peers {
    next_session: u64,
    pub sessions: Vec<PeerSession>,
}

pub struct RateLimiter {
    map: Mutex<HashMap<(IpAddr, u8), VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new() -> RateLimiter {
        RateLimiter { map: Mutex::new(HashMap::new()) }
    }

    /// Sliding one-minute window per (client IP, bucket): true if allowed.
    pub fn allow(&self, ip: IpAddr, bucket: u8, per_minute: usize) -> bool {
        let now = Instant::now();
        let window = Duration::from_secs(60);
        let mut map = lock(&self.map);
        if map.len() > 10_000 {
            map.retain(|_, q| q.back().map_or(false, |t| now.duration_since(*t) < window));
        }
        let q = map.entry((ip, bucket)).or_default();
        while let Some(first) = q.front() {
            if now.duration_since(*first) >= window {
                q.pop_front();
            } else {
                break;
            }
        }
        if q.len() >= per_minute {
            false
        } else {
            q.push_back(now);
            true
        }
    }
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new()
    }
}

pub struct Node {
    pub cfg: Config,
    pub peer_id: String,
    pub state: Mutex<State>,
    pub events: Mutex<Events>,
    pub peers: Mutex<Peers>,
    pub limiter: RateLimiter,
    pub http_connections: AtomicUsize,
}

/// Outcome of offering blocks from a peer.
#[derive(Debug, PartialEq)]
pub enum Accept {
    Adopted,
    NotBetter,
    NoParent,
    Invalid(String),
}

impl Node {
    /// Open storage (or fall back to memory) and build the node.
    pub fn new(cfg: Config) -> Node {
        let mut startup_events: Vec<(&'static str, String)> = Vec::new();
        let (storage, chain) = match Storage::open(Path::new(&cfg.data_dir)) {
            Ok((storage, loaded)) => {
                if let Some(problem) = &loaded.problem {
                    let msg = format!(
                        "storage: discarded the damaged end of the chain file ({}); kept {} block(s); original saved as {}",
                        problem,
                        loaded.blocks.len(),
                        loaded.backup.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
                    );
                    log::warn(&msg);
                    startup_events.push(("storage_repaired", msg));
                }
                let chain = Chain::new(loaded.blocks);
                log::info(&format!(
                    "storage: data dir '{}' opened, chain loaded: height {} (latest hash {})",
                    cfg.data_dir,
                    chain.height(),
                    short(&chain.tip().block_hash, 16)
                ));
                (Some(storage), chain)
            }
            Err(e) => {
                let msg = in_memory_message(&cfg.data_dir, &e.to_string());
                log::error(&msg);
                startup_events.push(("storage_error", msg));
                (None, Chain::new(Vec::new()))
            }
        };
        // like the real node (a fresh libp2p keypair at every start): never
        // persisted, never derived from the data dir
        let peer_id = new_peer_id();
        log::info(&format!("local peer id: {} (new at every start)", peer_id));
        let node = Node {
            state: Mutex::new(State { chain, storage, pool: Vec::new(), tx_pool: Vec::new(), data_dir: cfg.data_dir.clone() }),
            cfg,
            peer_id,
            events: Mutex::new(Events { next_id: 1, ring: VecDeque::new() }),
            peers: Mutex::new(Peers { next_session: 1, sessions: Vec::new() }),
            limiter: RateLimiter::new(),
            http_connections: AtomicUsize::new(0),
        };
        node.event("started", format!("pulse-node {} started, {}", VERSION, node.cfg.describe()));
        for (kind, msg) in startup_events {
            node.event(kind, msg);
        }
        node
    }

    pub fn event(&self, kind: &'static str, message: String) {
        let mut ev = lock(&self.events);
        let id = ev.next_id;
        ev.next_id += 1;
        ev.ring.push_back(Event { id, timestamp: now_ms(), kind, message });
        while ev.ring.len() > MAX_EVENTS {
            ev.ring.pop_front();
        }
    }

    pub fn tip(&self) -> (u64, String) {
        let st = lock(&self.state);
        (st.chain.height(), st.chain.tip().block_hash.clone())
    }

    pub fn tip_line(&self) -> String {
        let (h, hash) = self.tip();
        format!("TIP {} {}", h, hash)
    }

    // ---- peers -----------------------------------------------------------

    /// Register a session; returns its id and whether it is the first one to this peer id.
    pub fn add_peer(&self, peer_id: &str, addr: SocketAddr, direction: &'static str, tx: SyncSender<String>) -> (u64, bool) {
        let mut p = lock(&self.peers);
        let session = p.next_session;
        p.next_session += 1;
        let first = !p.sessions.iter().any(|s| s.peer_id == peer_id);
        p.sessions.push(PeerSession { session, peer_id: peer_id.to_string(), addr, direction, tx });
        (session, first)
    }

    /// Remove a session; returns whether it was the last one to its peer id.
    pub fn remove_peer(&self, session: u64) -> bool {
        let mut p = lock(&self.peers);
        let peer_id = match p.sessions.iter().find(|s| s.session == session) {
            Some(s) => s.peer_id.clone(),
            None => return false,
        };
        p.sessions.retain(|s| s.session != session);
        !p.sessions.iter().any(|s| s.peer_id == peer_id)
    }

    /// Distinct connected peer ids, in connection order.
    pub fn connected_peers(&self) -> Vec<String> {
        let p = lock(&self.peers);
        let mut out: Vec<String> = Vec::new();
        for s in &p.sessions {
            if !out.contains(&s.peer_id) {
                out.push(s.peer_id.clone());
            }
        }
        out
    }

    pub fn connections_json(&self) -> Json {
        let p = lock(&self.peers);
        Json::Arr(
            p.sessions
                .iter()
                .map(|s| obj(vec![("peer_id", string(&s.peer_id)), ("address", string(&s.addr.to_string())), ("direction", string(s.direction))]))
                .collect(),
        )
    }

    /// Queue a line for every connected session (a full queue drops the line:
    /// that peer will catch up from the next TIP).
    pub fn broadcast(&self, line: &str) {
        let txs: Vec<SyncSender<String>> = lock(&self.peers).sessions.iter().map(|s| s.tx.clone()).collect();
        for tx in txs {
            let _ = tx.try_send(line.to_string());
        }
    }

    fn announce(&self, tip: &Block) {
        self.broadcast(&format!("BLOCK {}", tip.to_json()));
    }

    // ---- heartbeats and blocks ---------------------------------------------

    /// Add a submitted heartbeat to the pool (one per device: the newest wins).
    pub fn submit(&self, hb: Heartbeat) -> Result<usize, String> {
        let mut st = lock(&self.state);
        if let Some(existing) = st.pool.iter_mut().find(|h| h.device_id == hb.device_id) {
            *existing = hb;
        } else {
            if st.pool.len() >= MAX_POOL {
                return Err("heartbeat pool is full".into());
            }
            st.pool.push(hb);
        }
        Ok(st.pool.len())
    }

    /// Add a submitted transaction to the pool. Err((status, message)) for a
    /// transaction already pooled or already in the chain, or a full pool.
    pub fn submit_tx(&self, t: Transaction) -> Result<usize, (u16, String)> {
        let mut st = lock(&self.state);
        if st.chain.has_tx(&t.tx_id) || st.tx_pool.iter().any(|p| p.tx_id == t.tx_id) {
            return Err((409, "Transaction already known".into()));
        }
        if st.tx_pool.len() >= MAX_TX_POOL {
            return Err((503, "transaction pool is full".into()));
        }
        st.tx_pool.push(t);
        Ok(st.tx_pool.len())
    }

    /// The clean shutdown (SIGINT only): wait for a block write in progress
    /// (by taking the state lock, kept until the process exits), flush the
    /// chain file and the data dir, log, and exit 0.
    pub fn shutdown(&self, signal_name: &str) -> ! {
        log::info(&format!("received {}: shutting down", signal_name));
        let mut st = lock(&self.state);
        let height = st.chain.height();
        let flushed = match st.storage.as_mut() {
            Some(s) => s.flush().map(|_| true),
            None => Ok(false),
        };
        match flushed {
            Ok(true) => log::info(&format!("shutdown: chain flushed to '{}' at height {}", st.data_dir, height)),
            Ok(false) => log::info(&format!("shutdown: in-memory mode, nothing to flush (height {} is lost)", height)),
            Err(e) => log::error(&format!("shutdown: flushing the chain file failed: {}", e)),
        }
        self.event("shutdown", format!("{} at height {}", signal_name, height));
        log::info("shutdown complete");
        std::process::exit(0);
    }

    /// Produce the block of slot `slot_time` if this node has none for it yet.
    pub fn produce(&self, slot_time: u64) -> Option<Block> {
        let block = {
            let mut st = lock(&self.state);
            let tip = st.chain.tip().clone();
            if tip.timestamp >= slot_time {
                return None; // a block for this slot (or a later one) is already there
            }
            let mut hbs = if self.cfg.simulate {
                simulated_heartbeats(&tip.block_hash, slot_time, self.cfg.threshold)
            } else {
                Vec::new()
            };
            if ((hbs.len() + st.pool.len()) as u64) < self.cfg.threshold {
                return None; // not enough live participants
            }
            let room = MAX_HEARTBEATS_PER_BLOCK.saturating_sub(hbs.len()).min(st.pool.len());
            let from_pool: Vec<Heartbeat> = st.pool.drain(..room).collect();
            hbs.extend(from_pool);
            // (a pooled transaction that reached the chain meanwhile, in a peer's block, is dropped)
            let pooled = std::mem::take(&mut st.tx_pool);
            let still_pending: Vec<Transaction> = pooled.into_iter().filter(|t| !st.chain.has_tx(&t.tx_id)).collect();
            st.tx_pool = still_pending;
            let ntx = st.tx_pool.len().min(MAX_TX_PER_BLOCK);
            let txs: Vec<Json> = st.tx_pool.drain(..ntx).map(|t| t.to_json()).collect();
            let b = Block::build(tip.index + 1, slot_time, &tip.block_hash, hbs, txs);
            st.persist_append(std::slice::from_ref(&b));
            st.chain.push(b.clone());
            b
        };
        log::info(&format!(
            "produced block #{} hash={} heartbeats={} transactions={}",
            block.index,
            short(&block.block_hash, 16),
            block.heartbeats.len(),
            block.transactions.len()
        ));
        self.event("block_produced", format!("block #{} {}", block.index, block.block_hash));
        self.announce(&block);
        Some(block)
    }

    /// Offer consecutive blocks received from `from_peer`; adopt them if they
    /// make a better chain (persisting first), then gossip the new tip.
    pub fn offer(&self, seg: &[Block], from_peer: &str) -> Accept {
        let (tip, appended, removed_count, reorg_from) = {
            let mut st = lock(&self.state);
            match st.chain.plan(seg, now_ms()) {
                Plan::Append(blocks) => {
                    st.persist_append(&blocks);
                    let n = blocks.len();
                    for b in blocks {
                        st.chain.push(b);
                    }
                    (st.chain.tip().clone(), n, 0, None)
                }
                Plan::Reorg { from, blocks } => {
                    st.persist_rewrite(from, &blocks);
                    let n = blocks.len();
                    let kept: std::collections::HashSet<String> = blocks
                        .iter()
                        .flat_map(|b| b.heartbeats.iter().map(|h| format!("{}:{}", h.device_id, h.timestamp)))
                        .collect();
                    let removed = st.chain.replace_from(from, blocks);
                    // submitted heartbeats of abandoned blocks go back to the pool
                    for b in &removed {
                        for h in &b.heartbeats {
                            let key = format!("{}:{}", h.device_id, h.timestamp);
                            if !h.is_simulated() && !kept.contains(&key) && st.pool.len() < MAX_POOL && !st.pool.iter().any(|p| p.device_id == h.device_id) {
                                st.pool.push(h.clone());
                            }
                        }
                        // and so do their transactions, unless the new chain has them
                        for tj in &b.transactions {
                            if let Ok(t) = Transaction::from_block_json(tj) {
                                if !st.chain.has_tx(&t.tx_id)
                                    && st.tx_pool.len() < MAX_TX_POOL
                                    && !st.tx_pool.iter().any(|p| p.tx_id == t.tx_id)
                                {
                                    st.tx_pool.push(t);
                                }
                            }
                        }
                    }
                    (st.chain.tip().clone(), n, removed.len(), Some(from))
                }
                Plan::NotBetter => return Accept::NotBetter,
                Plan::NoParent => return Accept::NoParent,
                Plan::Invalid(e) => return Accept::Invalid(e),
            }
        };
        let from_short = short(from_peer, 16).to_string();
        match reorg_from {
            None if appended == 1 => {
                log::info(&format!(
                    "accepted block #{} hash={} heartbeats={} from peer {}",
                    tip.index,
                    short(&tip.block_hash, 16),
                    tip.heartbeats.len(),
                    from_short
                ));
                self.event("block_accepted", format!("block #{} {} from {}", tip.index, tip.block_hash, from_peer));
            }
            None => {
                log::info(&format!(
                    "synced {} block(s) from peer {}: height {} hash={}",
                    appended,
                    from_short,
                    tip.index,
                    short(&tip.block_hash, 16)
                ));
                self.event("chain_synced", format!("{} block(s) from {}, height {}", appended, from_peer, tip.index));
            }
            Some(from) => {
                let msg = format!(
                    "chain reorganisation: replaced {} block(s) from #{} with {} block(s) from peer {}: height {} hash={}",
                    removed_count,
                    from,
                    appended,
                    from_short,
                    tip.index,
                    short(&tip.block_hash, 16)
                );
                log::info(&msg);
                self.event("chain_reorg", msg);
            }
        }
        self.announce(&tip);
        Accept::Adopted
    }
}
