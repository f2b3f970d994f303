//! pulse-node stand-in: a test double of the Pulse proof-of-life node
//! (see README.md and the node contract). Standard library only.

mod block;
mod build_mode;
mod chain;
mod config;
mod http;
mod json;
mod log;
mod node;
mod p2p;
mod sha256;
mod signals;
mod storage;
mod tx;
mod util;

use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use config::{parse_peer_addr, PeerAddr};
use node::{Node, VERSION};
use util::now_ms;

fn bind(what: &str, port: u16) -> TcpListener {
    match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            log::error(&format!("cannot listen for {} on 0.0.0.0:{}: {}; exiting", what, port, e));
            std::process::exit(1);
        }
    }
}

/// Produce a block at every multiple of the interval (wall clock), so that
/// nodes with the same interval produce in the same slots.
fn producer(node: Arc<Node>) {
    let interval = node.cfg.interval_ms;
    loop {
        let now = now_ms();
        let next = (now / interval + 1) * interval;
        thread::sleep(Duration::from_millis(next - now));
        let slot = (now_ms() / interval) * interval;
        node.produce(slot);
    }
}

fn spawn<F: FnOnce() + Send + 'static>(name: &str, f: F) {
    if let Err(e) = thread::Builder::new().name(name.to_string()).spawn(f) {
        log::error(&format!("cannot start thread {}: {}; exiting", name, e));
        std::process::exit(1);
    }
}

fn main() {
    let cfg = config::parse_args(std::env::args().skip(1));
    // first, so that a SIGINT during start-up is not lost (it waits in the pipe)
    let sigint = signals::install();
    log::info(&format!("pulse-node {} (stand-in) starting: {} broken={}", VERSION, cfg.describe(), build_mode::BROKEN));
    if build_mode::BROKEN {
        log::warn("this is a deliberately broken build (test release): /health answers 503 forever");
    }
    let peers: Vec<PeerAddr> = cfg
        .peers
        .iter()
        .filter_map(|p| {
            let parsed = parse_peer_addr(p);
            if parsed.is_none() {
                log::warn(&format!("ignoring invalid peer address '{}'", p));
            }
            parsed
        })
        .collect();

    let node = Arc::new(Node::new(cfg));
    match sigint {
        Ok(mut reader) => {
            log::info("signals: SIGINT shuts down cleanly; SIGTERM ends the process at once (blocks are on disk as they are made)");
            let n = node.clone();
            spawn("signals", move || {
                signals::wait_for_sigint(&mut reader);
                n.shutdown("SIGINT");
            });
        }
        Err(e) => log::warn(&format!("cannot install the SIGINT handler ({}); SIGINT will end the process at once", e)),
    }
    let p2p_listener = bind("peers", node.cfg.p2p_port);
    let http_listener = bind("the HTTP API", node.cfg.port);
    let p2p_port = p2p_listener.local_addr().map(|a| a.port()).unwrap_or(node.cfg.p2p_port);
    let http_port = http_listener.local_addr().map(|a| a.port()).unwrap_or(node.cfg.port);

    log::info(&format!("P2P listening on 0.0.0.0:{} ({})", p2p_port, p2p::PROTO));
    let n = node.clone();
    spawn("p2p-listen", move || p2p::listen(n, p2p_listener));
    for peer in peers {
        log::info(&format!("dialling peer {} ({}:{})", peer.raw, peer.host, peer.port));
        let n = node.clone();
        spawn("p2p-dial", move || p2p::dial_forever(n, peer));
    }
    if node.cfg.simulate {
        log::info(&format!("simulation on: a block with synthetic heartbeats every {} ms", node.cfg.interval_ms));
    } else {
        log::info(&format!(
            "simulation off: a block every {} ms when at least {} heartbeat(s) are pooled",
            node.cfg.interval_ms, node.cfg.threshold
        ));
    }
    let n = node.clone();
    spawn("producer", move || producer(n));
    log::info(&format!("HTTP API listening on 0.0.0.0:{}", http_port));
    http::serve(node, http_listener);
}
