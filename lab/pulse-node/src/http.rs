//! HTTP/1.1 API: one thread per connection, `Connection: close`, JSON bodies
//! wrapped as `{"success": bool, "data": ..., "error": ...}`.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::block::Heartbeat;
use crate::build_mode::BROKEN;
use crate::json::{self, num_u, obj, string, Json};
use crate::log;
use crate::node::{Node, VERSION};
use crate::util::{lock, now_ms};

pub const QUERY_LIMIT_PER_MIN: usize = 120;
pub const PULSE_LIMIT_PER_MIN: usize = 30;
pub const MAX_CONNECTIONS: usize = 512;
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
const BUCKET_QUERY: u8 = 0;
const BUCKET_PULSE: u8 = 1;

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
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn ok(data: Json) -> Response {
    Response { status: 200, body: obj(vec![("success", Json::Bool(true)), ("data", data), ("error", Json::Null)]).to_string() }
}

fn fail(status: u16, error: &str) -> Response {
    Response { status, body: obj(vec![("success", Json::Bool(false)), ("data", Json::Null), ("error", string(error))]).to_string() }
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

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
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

const KNOWN: [&str; 10] = ["/health", "/info", "/stats", "/chain", "/blocks", "/peers", "/events", "/pulse", "/ws", "/block/latest"];

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
    let (bucket, limit) = if path == "/pulse" && method == "POST" {
        (BUCKET_PULSE, PULSE_LIMIT_PER_MIN)
    } else {
        (BUCKET_QUERY, QUERY_LIMIT_PER_MIN)
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
        ("POST", "/pulse") => pulse(node, &req.body),
        ("GET", "/ws") => fail(501, "WebSocket is not implemented by the pulse-node stand-in"),
        (_, p) if KNOWN.contains(&p) || p.starts_with("/block/") => fail(405, "Method not allowed"),
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
