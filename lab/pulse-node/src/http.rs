//! HTTP/1.1 API: one thread per connection, `Connection: close`, JSON bodies
//! wrapped as `{"success": true, "data": ...}` or `{"success": false, "error": "..."}`:
//! a member without a value is left out, never sent as `null` (node contract).

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::block::Heartbeat;
use crate::build_mode::BROKEN;
use crate::chain::round6;
use crate::json::{self, num_f, num_u, obj, string, Json};
use crate::log;
use crate::node::{Node, VERSION};
use crate::tx::{check_pubkey, Transaction};
use crate::util::{lock, now_ms};

pub const QUERY_LIMIT_PER_MIN: usize = 120;
pub const PULSE_LIMIT_PER_MIN: usize = 30;
pub const TX_LIMIT_PER_MIN: usize = 30;
pub const MAX_CONNECTIONS: usize = 512;
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
const BUCKET_QUERY: u8 = 0;
const BUCKET_PULSE: u8 = 1;
const BUCKET_TX: u8 = 2;

pub struct Response {
    pub status: u16,
    pub body: String,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A success: `{"success":true,"data":...}` (no `error` member).
fn ok(data: Json) -> Response {
    Response { status: 200, body: obj(vec![("success", Json::Bool(true)), ("data", data)]).to_string() }
}

/// A failure: `{"success":false,"error":"..."}` (no `data` member).
fn fail(status: u16, error: &str) -> Response {
    Response { status, body: obj(vec![("success", Json::Bool(false)), ("error", string(error))]).to_string() }
}

/// Exactly the body the contract documents for rate-limited calls.
fn rate_limited() -> Response {
    Response { status: 429, body: "{\"success\":false,\"error\":\"Rate limit exceeded\"}".to_string() }
}

pub fn serve(node: Arc<Node>, listener: TcpListener) {
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                log::warn(&format!("http: accept failed: {}", e));
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if node.http_connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            node.http_connections.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            write_response(&stream, &fail(503, "Too many connections"), false);
            continue;
        }
        let n = node.clone();
        let spawned = thread::Builder::new().name("http".into()).spawn(move || {
            handle(&n, stream);
            n.http_connections.fetch_sub(1, Ordering::SeqCst);
        });
        if let Err(e) = spawned {
            node.http_connections.fetch_sub(1, Ordering::SeqCst);
            log::warn(&format!("http: cannot spawn a connection thread: {}", e));
        }
    }
}

struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    body: Vec<u8>,
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Read one request. Err(response) for malformed, oversized or slow requests.
fn read_request(stream: &mut TcpStream) -> Result<Option<Request>, Response> {
    let start = Instant::now();
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find_head_end(&buf) {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Err(fail(431, "Request header too large"));
        }
        if start.elapsed() > REQUEST_DEADLINE {
            return Ok(None);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(None), // closed before a full request
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return Ok(None), // timeout or reset: nobody to answer
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let parts: Vec<&str> = request_line.split(' ').collect();
    if parts.len() != 3 || !parts[2].starts_with("HTTP/1.") {
        return Err(fail(400, "Malformed request line"));
    }
    let mut content_length = 0usize;
    let mut expect_continue = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("expect") && value.trim().eq_ignore_ascii_case("100-continue") {
                expect_continue = true;
            } else if name.trim().eq_ignore_ascii_case("content-length") {
                content_length = match value.trim().parse() {
                    Ok(n) => n,
                    Err(_) => return Err(fail(400, "Invalid Content-Length")),
                };
            } else if name.trim().eq_ignore_ascii_case("transfer-encoding") {
                return Err(fail(400, "Chunked request bodies are not supported"));
            }
        }
    }
    if content_length > MAX_BODY {
        return Err(fail(413, "Request body too large"));
    }
    let mut body: Vec<u8> = buf[head_end..].to_vec();
    if expect_continue && body.len() < content_length {
        // curl sends `Expect: 100-continue` for larger bodies and waits for this
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    while body.len() < content_length {
        if start.elapsed() > REQUEST_DEADLINE {
            return Ok(None);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(fail(400, "Incomplete request body")),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(_) => return Ok(None),
        }
    }
    body.truncate(content_length);
    let target = parts[1];
    let (path, qs) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    Ok(Some(Request { method: parts[0].to_string(), path: path.to_string(), query: parse_query(qs), body }))
}

/// Decode `%XX` escapes, and `+` as a space (query strings only: `plus_is_space`).
fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn percent_decode(s: &str) -> String {
    decode(s, true)
}

fn parse_query(qs: &str) -> Vec<(String, String)> {
    qs.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn query_u64(q: &[(String, String)], key: &str) -> Option<u64> {
    q.iter().rev().find(|(k, _)| k == key).and_then(|(_, v)| v.parse().ok())
}

fn write_response(mut stream: &TcpStream, r: &Response, head_only: bool) {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        r.body.len()
    );
    if r.status == 429 {
        out.push_str("Retry-After: 60\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(&r.body);
    }
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.flush();
}

fn handle(node: &Arc<Node>, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let ip = match stream.peer_addr() {
        Ok(a) => a.ip(),
        Err(_) => return,
    };
    let (resp, head_only) = match read_request(&mut stream) {
        Ok(None) => return,
        Err(resp) => (resp, false),
        Ok(Some(req)) => {
            let head_only = req.method == "HEAD";
            (route(node, ip, &req), head_only)
        }
    };
    write_response(&stream, &resp, head_only);
    // Let the client read the answer before the socket goes away: closing with
    // unread input would send a reset.
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < 256 * 1024 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

const KNOWN: [&str; 12] = [
    "/health",
    "/info",
    "/stats",
    "/chain",
    "/blocks",
    "/peers",
    "/events",
    "/pulse",
    "/ws",
    "/block/latest",
    "/accounts",
    "/tx",
];

fn route(node: &Node, ip: IpAddr, req: &Request) -> Response {
    // HEAD is answered like GET, without a body (as axum does)
    let method = if req.method == "HEAD" { "GET" } else { req.method.as_str() };
    let path = req.path.as_str();
    if path == "/health" {
        if method != "GET" {
            return fail(405, "Method not allowed");
        }
        if BROKEN {
            return Response { status: 503, body: "{\"success\":false,\"error\":\"unhealthy\"}".to_string() };
        }
        return ok(string("Pulse node is alive"));
    }
    let (bucket, limit) = match (method, path) {
        ("POST", "/pulse") => (BUCKET_PULSE, PULSE_LIMIT_PER_MIN),
        ("POST", "/tx") => (BUCKET_TX, TX_LIMIT_PER_MIN),
        _ => (BUCKET_QUERY, QUERY_LIMIT_PER_MIN),
    };
    if !node.limiter.allow(ip, bucket, limit) {
        return rate_limited();
    }
    match (method, path) {
        ("GET", "/info") => info(node),
        ("GET", "/stats") => {
            let st = lock(&node.state);
            ok(st.chain.stats(node.cfg.interval_ms))
        }
        ("GET", "/chain") => {
            let st = lock(&node.state);
            ok(obj(vec![
                ("height", num_u(st.chain.height())),
                ("latest_hash", string(&st.chain.tip().block_hash)),
                ("heartbeat_pool_size", num_u(st.pool.len() as u64)),
            ]))
        }
        ("GET", "/blocks") => blocks(node, &req.query),
        ("GET", "/block/latest") => {
            let b = lock(&node.state).chain.tip().clone();
            ok(b.to_json())
        }
        ("GET", p) if p.starts_with("/block/") => {
            let idx = &p["/block/".len()..];
            match idx.parse::<u64>() {
                Ok(i) => {
                    let b = lock(&node.state).chain.get(i).cloned();
                    match b {
                        Some(b) => ok(b.to_json()),
                        None => fail(404, "Block not found"),
                    }
                }
                Err(_) => fail(400, "Invalid block index"),
            }
        }
        ("GET", "/peers") => {
            let peers = node.connected_peers();
            ok(obj(vec![
                ("peer_id", string(&node.peer_id)),
                ("peer_count", num_u(peers.len() as u64)),
                ("connected_peers", Json::Arr(peers.iter().map(|p| string(p)).collect())),
                ("connections", node.connections_json()),
            ]))
        }
        ("GET", "/events") => events(node, &req.query),
        ("GET", p) if p.starts_with("/balance/") => balance(node, &p["/balance/".len()..]),
        ("GET", "/accounts") => ok(lock(&node.state).chain.accounts_json()),
        ("POST", "/pulse") => pulse(node, &req.body),
        ("POST", "/tx") => submit_tx(node, &req.body),
        ("GET", "/ws") => fail(501, "WebSocket is not implemented by the pulse-node stand-in"),
        (_, p) if KNOWN.contains(&p) || p.starts_with("/block/") || p.starts_with("/balance/") => fail(405, "Method not allowed"),
        _ => fail(404, "Not found"),
    }
}

fn info(node: &Node) -> Response {
    let (height, accounts, pool) = {
        let st = lock(&node.state);
        (st.chain.height(), st.chain.active_accounts(), st.pool.len())
    };
    let peer_count = node.connected_peers().len();
    ok(obj(vec![
        ("version", string(VERSION)),
        ("chain_height", num_u(height)),
        ("active_accounts", num_u(accounts as u64)),
        ("heartbeat_pool_size", num_u(pool as u64)),
        ("ws_clients", num_u(0)),
        ("peer_id", string(&node.peer_id)),
        ("peer_count", num_u(peer_count as u64)),
    ]))
}

pub const MAX_PAGE: u64 = 200;
pub const DEFAULT_PAGE: u64 = 50;

/// Clamp `/blocks` paging: limit ≤ 200 (default 50), offset defaults to the
/// last `limit` blocks. Returns (offset, limit).
pub fn page(total: u64, offset: Option<u64>, limit: Option<u64>) -> (u64, u64) {
    let limit = limit.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE);
    let offset = offset.unwrap_or_else(|| total.saturating_sub(limit));
    (offset, limit)
}

fn blocks(node: &Node, q: &[(String, String)]) -> Response {
    let (total, offset, limit, list) = {
        let st = lock(&node.state);
        let total = st.chain.len() as u64;
        let (offset, limit) = page(total, query_u64(q, "offset"), query_u64(q, "limit"));
        let list: Vec<_> = st.chain.blocks().iter().skip(offset.min(total) as usize).take(limit as usize).cloned().collect();
        (total, offset, limit, list)
    };
    ok(obj(vec![
        ("blocks", Json::Arr(list.iter().map(|b| b.to_json()).collect())),
        ("total", num_u(total)),
        ("offset", num_u(offset)),
        ("limit", num_u(limit)),
    ]))
}

fn events(node: &Node, q: &[(String, String)]) -> Response {
    let limit = query_u64(q, "limit").unwrap_or(50).min(crate::node::MAX_EVENTS as u64) as usize;
    let since = query_u64(q, "since").unwrap_or(0);
    let ev = lock(&node.events);
    let matching: Vec<Json> = ev.ring.iter().filter(|e| e.id > since).map(|e| e.to_json()).collect();
    let skip = matching.len().saturating_sub(limit);
    ok(Json::Arr(matching.into_iter().skip(skip).collect()))
}

/// `GET /balance/:pubkey`: `{pubkey, balance}`. An account the chain does not
/// know has balance 0 (200, like an empty account), not a 404.
fn balance(node: &Node, raw: &str) -> Response {
    let pubkey = decode(raw, false);
    if let Err(e) = check_pubkey(&pubkey) {
        return fail(400, &format!("Invalid pubkey: {}", e));
    }
    let b = lock(&node.state).chain.balance(&pubkey);
    ok(obj(vec![("pubkey", string(&pubkey)), ("balance", num_f(round6(b)))]))
}

/// `POST /tx`: check the transaction's shape (see `Transaction::from_submission`),
/// pool it for the next block; `{accepted, tx_id, tx_pool_size}`.
fn submit_tx(node: &Node, body: &[u8]) -> Response {
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(_) => return fail(400, "Invalid transaction: body is not UTF-8"),
    };
    let j = match json::parse(text) {
        Ok(j) => j,
        Err(e) => return fail(400, &format!("Invalid transaction: {}", e)),
    };
    let t = match Transaction::from_submission(&j, now_ms()) {
        Ok(t) => t,
        Err(e) => return fail(400, &format!("Invalid transaction: {}", e)),
    };
    let tx_id = t.tx_id.clone();
    match node.submit_tx(t) {
        Ok(pool) => ok(obj(vec![
            ("accepted", Json::Bool(true)),
            ("tx_id", string(&tx_id)),
            ("tx_pool_size", num_u(pool as u64)),
        ])),
        Err((status, e)) => fail(status, &e),
    }
}

/// Accept a heartbeat: a JSON object (or `{"heartbeat": {...}}`) with a device
/// identifier (`device_id`, `pubkey`, `public_key`, `account` or `address`),
/// optional `heart_rate`/`bpm` (1..300, default 72) and `timestamp` (ms,
/// default now). Signatures are not checked.
fn pulse(node: &Node, body: &[u8]) -> Response {
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(_) => return fail(400, "Invalid heartbeat: body is not UTF-8"),
    };
    let j = match json::parse(text) {
        Ok(j) => j,
        Err(e) => return fail(400, &format!("Invalid heartbeat: {}", e)),
    };
    let j = match j.get("heartbeat") {
        Some(inner @ Json::Obj(_)) => inner.clone(),
        _ => j,
    };
    if !matches!(j, Json::Obj(_)) {
        return fail(400, "Invalid heartbeat: expected a JSON object");
    }
    let device = ["device_id", "pubkey", "public_key", "account", "address"]
        .iter()
        .find_map(|k| j.get(k).and_then(|v| v.as_str()).map(|s| s.to_string()));
    let device_id = match device {
        Some(d) => d,
        None => return fail(400, "Invalid heartbeat: missing device_id"),
    };
    let rate = j.get("heart_rate").or_else(|| j.get("bpm")).map(|v| v.as_f64());
    let heart_rate = match rate {
        None => 72,
        Some(Some(r)) if (1.0..=300.0).contains(&r.round()) => r.round() as u32,
        Some(_) => return fail(400, "Invalid heartbeat: heart_rate must be a number in 1..300"),
    };
    let timestamp = j.get("timestamp").and_then(|v| v.as_u64()).unwrap_or_else(now_ms);
    let hb = Heartbeat { device_id, heart_rate, timestamp };
    if let Err(e) = hb.check() {
        return fail(400, &format!("Invalid heartbeat: {}", e));
    }
    match node.submit(hb) {
        Ok(pool) => ok(obj(vec![("accepted", Json::Bool(true)), ("heartbeat_pool_size", num_u(pool as u64))])),
        Err(e) => fail(503, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_defaults_and_limits() {
        assert_eq!(page(10, None, None), (0, 50));
        assert_eq!(page(120, None, None), (70, 50));
        assert_eq!(page(1000, Some(0), Some(1000)), (0, 200));
        assert_eq!(page(1000, None, Some(10)), (990, 10));
        assert_eq!(page(5, Some(7), Some(3)), (7, 3));
    }

    #[test]
    fn query_strings() {
        let q = parse_query("offset=5&limit=abc&x=a%20b+c&flag");
        assert_eq!(query_u64(&q, "offset"), Some(5));
        assert_eq!(query_u64(&q, "limit"), None);
        assert_eq!(q[2].1, "a b c");
        assert_eq!(q[3].0, "flag");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%41%42"), "AB");
    }

    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// A node with a fresh data dir under the system temp dir.
    fn test_node(simulate: bool) -> (Node, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "pulse-standin-http-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = crate::config::Config { data_dir: dir.display().to_string(), simulate, interval_ms: 1000, ..Default::default() };
        (Node::new(cfg), dir)
    }

    fn call(node: &Node, method: &str, target: &str, body: &str) -> (u16, Json) {
        let (path, qs) = target.split_once('?').unwrap_or((target, ""));
        let req = Request { method: method.into(), path: path.into(), query: parse_query(qs), body: body.as_bytes().to_vec() };
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let r = route(node, ip, &req);
        (r.status, json::parse(&r.body).unwrap())
    }

    fn members(j: &Json) -> Vec<&str> {
        match j {
            Json::Obj(m) => m.iter().map(|(k, _)| k.as_str()).collect(),
            _ => panic!("not an object: {}", j),
        }
    }

    fn has_null(j: &Json) -> bool {
        match j {
            Json::Null => true,
            Json::Arr(a) => a.iter().any(has_null),
            Json::Obj(m) => m.iter().any(|(_, v)| has_null(v)),
            _ => false,
        }
    }

    #[test]
    fn wrapper_leaves_out_members_without_a_value() {
        assert_eq!(ok(num_u(1)).body, r#"{"success":true,"data":1}"#);
        assert_eq!(fail(404, "Not found").body, r#"{"success":false,"error":"Not found"}"#);
        assert_eq!(rate_limited().body, r#"{"success":false,"error":"Rate limit exceeded"}"#);
    }

    #[test]
    fn no_route_answers_null() {
        let (node, dir) = test_node(true);
        let t0 = crate::block::GENESIS_TIMESTAMP;
        for i in 1..=3 {
            node.produce(t0 + i * 1000);
        }
        let tx = r#"{"from":"sim-device-01","to":"someone","amount":0.5,"signature":"00"}"#;
        let (status, _) = call(&node, "POST", "/tx", tx);
        assert_eq!(status, 200);
        node.produce(t0 + 4000);
        let calls: [(&str, &str, &str); 22] = [
            ("GET", "/health", ""),
            ("GET", "/info", ""),
            ("GET", "/stats", ""),
            ("GET", "/chain", ""),
            ("GET", "/blocks", ""),
            ("GET", "/blocks?offset=0&limit=2", ""),
            ("GET", "/block/latest", ""),
            ("GET", "/block/1", ""),
            ("GET", "/block/999", ""),
            ("GET", "/block/x", ""),
            ("GET", "/peers", ""),
            ("GET", "/events", ""),
            ("GET", "/balance/sim-device-01", ""),
            ("GET", "/balance/nobody", ""),
            ("GET", "/balance/", ""),
            ("GET", "/accounts", ""),
            ("POST", "/pulse", r#"{"device_id":"w1"}"#),
            ("POST", "/pulse", "{"),
            ("POST", "/tx", "{}"),
            ("GET", "/ws", ""),
            ("GET", "/nope", ""),
            ("DELETE", "/accounts", ""),
        ];
        for (method, target, body) in calls.iter() {
            let (status, j) = call(&node, method, target, body);
            assert!(!has_null(&j), "{} {} -> {}", method, target, j);
            if status == 200 {
                assert_eq!(members(&j), vec!["success", "data"], "{} {}", method, target);
                assert_eq!(j.get("success"), Some(&Json::Bool(true)));
            } else {
                assert_eq!(members(&j), vec!["success", "error"], "{} {} -> {}", method, target, j);
                assert_eq!(j.get("success"), Some(&Json::Bool(false)));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn balance_accounts_and_tx_routes() {
        let (node, dir) = test_node(false);
        // unknown account: balance 0, not an error
        let (status, j) = call(&node, "GET", "/balance/nobody", "");
        assert_eq!(status, 200);
        assert_eq!(j.get("data").unwrap().to_string(), r#"{"pubkey":"nobody","balance":0}"#);
        assert_eq!(call(&node, "GET", "/balance/a%20b", "").0, 400);
        assert_eq!(call(&node, "GET", "/balance/", "").0, 400);
        assert_eq!(call(&node, "POST", "/balance/x", "").0, 405);
        assert_eq!(call(&node, "GET", "/accounts", "").1.get("data").unwrap().to_string(), "[]");

        // a heartbeat makes an account with the block reward
        assert_eq!(call(&node, "POST", "/pulse", r#"{"device_id":"alice"}"#).0, 200);
        node.produce(crate::block::GENESIS_TIMESTAMP + 1000);
        let (_, j) = call(&node, "GET", "/balance/alice", "");
        assert_eq!(j.get("data").unwrap().get("balance").unwrap().as_f64(), Some(10.0));

        // a transfer: shape checked, pooled, then in the next block
        let tx = r#"{"from":"alice","to":"bob","amount":4,"signature":"abcd"}"#;
        let (status, j) = call(&node, "POST", "/tx", tx);
        assert_eq!(status, 200, "{}", j);
        let data = j.get("data").unwrap();
        assert_eq!(data.get("accepted"), Some(&Json::Bool(true)));
        assert_eq!(data.get("tx_pool_size").unwrap().as_u64(), Some(1));
        let tx_id = data.get("tx_id").unwrap().as_str().unwrap().to_string();
        // the same transaction again: 409
        assert_eq!(call(&node, "POST", "/tx", tx).0, 409);
        assert_eq!(call(&node, "POST", "/tx", r#"{"from":"alice","to":"bob","amount":4}"#).0, 400);
        assert_eq!(call(&node, "GET", "/tx", "").0, 405);
        assert_eq!(call(&node, "POST", "/pulse", r#"{"device_id":"carol"}"#).0, 200);
        let b = node.produce(crate::block::GENESIS_TIMESTAMP + 2000).unwrap();
        assert_eq!(b.transactions.len(), 1);
        assert_eq!(b.transactions[0].get("tx_id").unwrap().as_str(), Some(tx_id.as_str()));
        assert_eq!(call(&node, "POST", "/tx", tx).0, 409, "in the chain now");
        let (_, j) = call(&node, "GET", "/balance/bob", "");
        assert_eq!(j.get("data").unwrap().get("balance").unwrap().as_f64(), Some(4.0));
        let (_, j) = call(&node, "GET", "/accounts", "");
        let list = j.get("data").unwrap().as_array().unwrap().clone();
        let ids: Vec<&str> = list.iter().map(|a| a.get("pubkey").unwrap().as_str().unwrap()).collect();
        assert_eq!(ids, vec!["alice", "bob", "carol"]);
        assert_eq!(list[0].get("balance").unwrap().as_f64(), Some(6.0));
        assert_eq!(list[2].get("balance").unwrap().as_f64(), Some(10.0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn post_tx_has_its_own_budget() {
        let (node, dir) = test_node(false);
        for i in 0..TX_LIMIT_PER_MIN {
            let body = format!(r#"{{"from":"a","to":"b","amount":1,"signature":"s{}"}}"#, i);
            assert_eq!(call(&node, "POST", "/tx", &body).0, 200);
        }
        let (status, j) = call(&node, "POST", "/tx", r#"{"from":"a","to":"b","amount":1,"signature":"s"}"#);
        assert_eq!((status, j.to_string().as_str()), (429, r#"{"success":false,"error":"Rate limit exceeded"}"#));
        // queries and heartbeats still have their own budgets
        assert_eq!(call(&node, "GET", "/accounts", "").0, 200);
        assert_eq!(call(&node, "POST", "/pulse", r#"{"device_id":"x"}"#).0, 200);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rate_limiter_window() {
        let r = crate::node::RateLimiter::new();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..120 {
            assert!(r.allow(ip, BUCKET_QUERY, 120));
        }
        assert!(!r.allow(ip, BUCKET_QUERY, 120));
        // other buckets and other clients have their own budget
        assert!(r.allow(ip, BUCKET_PULSE, 30));
        assert!(r.allow("10.0.0.1".parse().unwrap(), BUCKET_QUERY, 120));
    }
}
