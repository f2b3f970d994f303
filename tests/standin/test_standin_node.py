"""One stand-in node, black box: command line quirks, HTTP API (the wrapper
without null members), rate limits, persistence and the in-memory fallback,
a new peer id at every start, SIGINT (clean shutdown) against SIGTERM (at once)."""

import concurrent.futures
import re
import signal
import socket
import time

from standin_helpers import HOST, assert_wrapper, http, wait_until

BLOCK_FIELDS = {"index", "timestamp", "previous_hash", "heartbeats", "transactions", "n_live",
                "total_weight", "security", "bio_entropy", "block_hash"}
INFO_FIELDS = {"version", "chain_height", "active_accounts", "heartbeat_pool_size", "ws_clients",
               "peer_id", "peer_count"}
STATS_FIELDS = {"chain_length", "total_minted", "active_accounts", "current_tps", "avg_block_time",
                "total_security", "current_block_reward", "halving_epoch", "cumulative_weight",
                "inflation_rate"}


def start_line(node):
    lines = [l for l in node.log().splitlines() if "starting:" in l]
    assert lines, node.log()
    return lines[0]


def test_health_and_api_shapes(nodes):
    n = nodes.start("--simulate", "--interval", "200")
    status, body, headers = n.get("/health")
    assert (status, body) == (200, {"success": True, "data": "Pulse node is alive"})
    assert headers["Content-Type"] == "application/json"
    assert headers["Connection"] == "close"

    info = n.data("/info")
    assert set(info) == INFO_FIELDS
    assert re.fullmatch(r"\d+\.\d+\.\d+", info["version"])
    assert info["peer_id"].startswith("12D3KooW")
    assert info["ws_clients"] == 0 and info["peer_count"] == 0

    wait_until(lambda: n.chain()[0] >= 3, 10, what="3 blocks")
    assert set(n.data("/stats")) == STATS_FIELDS
    chain = n.data("/chain")
    assert set(chain) == {"height", "latest_hash", "heartbeat_pool_size"}

    page = n.data("/blocks?offset=0&limit=3")
    assert (page["offset"], page["limit"]) == (0, 3)
    blocks = page["blocks"]
    assert [b["index"] for b in blocks] == [0, 1, 2]
    for b in blocks:
        assert set(b) == BLOCK_FIELDS
        assert b["n_live"] == len(b["heartbeats"])
        assert len(b["block_hash"]) == 64
    assert blocks[0]["previous_hash"] == "0" * 64
    assert blocks[1]["previous_hash"] == blocks[0]["block_hash"]
    assert blocks[2]["previous_hash"] == blocks[1]["block_hash"]
    assert blocks[2]["timestamp"] > blocks[1]["timestamp"]

    # default page: the last 50; limit is capped at 200
    page = n.data("/blocks")
    assert page["limit"] == 50 and page["offset"] == max(0, page["total"] - 50)
    assert page["blocks"][-1]["index"] == page["total"] - 1 or page["total"] > page["offset"] + 50
    assert n.data("/blocks?offset=0&limit=1000")["limit"] == 200

    latest = n.data("/block/latest")
    assert set(latest) == BLOCK_FIELDS
    assert n.data("/block/1")["index"] == 1

    peers = n.data("/peers")
    assert peers == {"peer_id": info["peer_id"], "peer_count": 0, "connected_peers": [], "connections": []}

    events = n.data("/events?limit=5")
    assert 1 <= len(events) <= 5
    assert {"id", "timestamp", "kind", "message"} <= set(events[0])
    assert all(e["id"] > events[0]["id"] for e in events[1:])
    newest = events[-1]["id"]
    assert all(e["id"] > newest for e in n.data(f"/events?since={newest}"))


def test_no_null_member_in_any_answer(nodes):
    """Every route, successes and failures: {"success": true, "data": ...} or
    {"success": false, "error": "..."}, never a null (node contract)."""
    n = nodes.start("--simulate", "--interval", "200")
    wait_until(lambda: n.chain()[0] >= 2, 10, what="2 blocks")
    device = n.data("/block/1")["heartbeats"][0]["device_id"]
    tx = {"from": device, "to": "someone-else", "amount": 0.25, "signature": "3045022100ab"}
    calls = [
        ("GET", "/health", None), ("GET", "/info", None), ("GET", "/stats", None), ("GET", "/chain", None),
        ("GET", "/blocks", None), ("GET", "/blocks?offset=0&limit=2", None), ("GET", "/block/latest", None),
        ("GET", "/block/1", None), ("GET", "/block/999999", None), ("GET", "/block/abc", None),
        ("GET", "/peers", None), ("GET", "/events?limit=5", None), ("GET", f"/balance/{device}", None),
        ("GET", "/balance/nobody-knows-me", None), ("GET", "/balance/", None), ("GET", "/accounts", None),
        ("POST", "/pulse", {"device_id": "watch-null-check"}), ("POST", "/pulse", b"not json"),
        ("POST", "/tx", tx), ("POST", "/tx", tx), ("POST", "/tx", {"from": "a"}), ("GET", "/ws", None),
        ("GET", "/no/such/route", None), ("POST", "/health", b""), ("DELETE", "/accounts", None),
    ]
    statuses = []
    for method, path, body in calls:
        status, answer, headers = n.get(path, method=method, body=body)
        assert headers["Content-Type"] == "application/json"
        assert_wrapper(status, answer, f"{method} {path}")
        statuses.append(status)
    # successes and failures were both covered
    assert statuses.count(200) >= 15 and {400, 404, 405, 409, 501} <= set(statuses), statuses
    # the tx made it into a block: blocks are checked without null too
    wait_until(lambda: any(b["transactions"] for b in (n.poll("/blocks") or {"blocks": []})["blocks"]), 10,
               what="the tx in a block")
    assert_wrapper(*n.get("/blocks")[:2], "GET /blocks with a transaction")
    # and the rate-limited answer
    for _ in range(130):
        status, answer, _ = n.get("/info")
        if status == 429:
            break
    assert status == 429
    assert_wrapper(status, answer, "429")


def test_missing_block_unknown_route_and_head(nodes):
    n = nodes.start()
    status, body, _ = n.get("/block/999999")
    assert status == 404
    assert body["success"] is False and body["error"] == "Block not found"
    status, body, _ = n.get("/block/abc")
    assert status == 400 and body["success"] is False
    status, body, _ = n.get("/no/such/route")
    assert status == 404 and body["success"] is False
    status, body, _ = n.get("/health", method="POST", body=b"")
    assert status == 405 and body["success"] is False
    status, body, headers = n.get("/health", method="HEAD")
    assert status == 200 and body is None and int(headers["Content-Length"]) > 0
    status, body, _ = n.get("/nope", method="HEAD")
    assert status == 404 and body is None


def test_post_pulse(nodes):
    n = nodes.start("--interval", "200")  # no --simulate: blocks only from submitted heartbeats
    assert n.chain()[0] == 0
    status, body, _ = n.get("/pulse", method="POST", body={"device_id": "watch-1", "heart_rate": 64, "signature": "x"})
    assert status == 200 and body["success"] is True
    block = wait_until(lambda: n.chain()[0] >= 1 and n.data("/block/1"), 5, what="a block with the heartbeat")
    assert [h["device_id"] for h in block["heartbeats"]] == ["watch-1"]
    assert block["heartbeats"][0]["heart_rate"] == 64
    for bad in (b"not json", b"[1,2]", b'{"heart_rate": 70}', b'{"device_id": "w", "heart_rate": 9000}'):
        status, body, _ = n.get("/pulse", method="POST", body=bad)
        assert status == 400 and body["success"] is False, bad


def test_unknown_flags_are_ignored(nodes):
    n = nodes.make()
    n.raw_args = ["--no-such-flag", "--verbose=3", "stray-word", "--port", str(n.port), "-x",
                  "--p2p-port", str(n.p2p_port), "--log-level", "debug", "--data-dir", str(n.data_dir)]
    n.start()
    assert n.get("/health")[0] == 200
    line = start_line(n)
    assert f"port={n.port} p2p_port={n.p2p_port}" in line
    assert "interval_ms=5000" in line and "threshold=1" in line and "simulate=false" in line


def test_bad_numbers_fall_back_to_defaults(nodes):
    n = nodes.start("--interval", "abc", "--threshold", "-3", "--simulate")
    line = start_line(n)
    assert "interval_ms=5000" in line, line
    assert "threshold=1" in line, line
    assert "simulate=true" in line
    # the equals form is parsed too
    m = nodes.start("--interval=250", "--threshold=2")
    assert "interval_ms=250 " in start_line(m) and "threshold=2 " in start_line(m)


def test_rate_limit(nodes):
    n = nodes.start()
    statuses = [n.get("/info")[0] for _ in range(120)]
    assert statuses == [200] * 120
    status, body, headers = n.get("/info")
    assert status == 429
    assert body == {"success": False, "error": "Rate limit exceeded"}
    assert n.get("/chain")[0] == 429  # all query routes share the budget
    for _ in range(5):
        assert n.get("/health")[0] == 200  # never limited
    # POST /pulse has its own budget of 30 per minute
    pulses = [n.get("/pulse", method="POST", body={"device_id": f"d{i}"})[0] for i in range(31)]
    assert pulses == [200] * 30 + [429]


def test_concurrent_clients_and_slow_client(nodes):
    n = nodes.start()
    # a client that sends half a request and stalls must not block others
    slow = socket.create_connection((HOST, n.port), timeout=5)
    slow.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\n")
    try:
        t0 = time.monotonic()
        assert n.get("/health", timeout=2)[0] == 200
        assert time.monotonic() - t0 < 1.5
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(lambda _: http(n.port, "/health")[0], range(40)))
        assert results == [200] * 40
    finally:
        slow.close()


def test_raw_http_framing(nodes):
    n = nodes.start()
    with socket.create_connection((HOST, n.port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = b""
        for _ in range(100):
            chunk = s.recv(4096)
            if not chunk:
                break
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    assert length == len(body)
    assert b"Connection: close" in head


def test_blocks_survive_restart_and_torn_tail(nodes):
    n = nodes.start("--simulate", "--interval", "200")
    peer_id = n.data("/info")["peer_id"]
    wait_until(lambda: n.chain()[0] >= 3, 10, what="3 blocks")
    before = n.chain()
    n.kill()
    chain_file = n.data_dir / "chain.jsonl"
    persisted = chain_file.read_bytes().count(b"\n") - 1
    assert persisted >= before[0]
    # a torn write at the end is cut off at start
    with open(chain_file, "ab") as f:
        f.write(b'{"index": 999, "timest')
    n.start()
    height, _ = n.chain()
    assert height >= before[0]
    assert n.data(f"/block/{before[0]}")["block_hash"] == before[1]
    assert n.data("/info")["peer_id"] != peer_id  # a new peer id at every start, as the real node
    assert "discarded the damaged end of the chain file" in n.log()
    assert list(n.data_dir.glob("chain.jsonl.corrupt-*"))


def test_unwritable_data_dir_runs_in_memory(nodes, tmp_path):
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("not a directory\n")
    data_dir = blocker / "data"  # cannot be created, even by root
    n = nodes.start("--simulate", "--interval", "200", data_dir=data_dir)
    assert n.get("/health")[0] == 200
    assert "falling back to in-memory mode" in n.log()
    err = [l for l in n.log().splitlines() if "falling back to in-memory mode" in l][0]
    assert "ERROR" in err and str(data_dir) in err
    assert any(e["kind"] == "storage_error" for e in n.data("/events"))
    wait_until(lambda: n.chain()[0] >= 2, 10, what="blocks in memory")
    first_id = n.data("/info")["peer_id"]
    n.kill()
    restarted_ms = time.time() * 1000
    n.start()
    # nothing persisted: every block after genesis was made after the restart,
    # and the peer id is a new random one
    blocks = n.data("/blocks?offset=0&limit=200")["blocks"]
    assert all(b["timestamp"] >= restarted_ms - 5 for b in blocks[1:]), blocks
    assert n.data("/info")["peer_id"] != first_id


def test_new_peer_id_at_every_start(nodes):
    """The peer id is generated anew at every start, not kept in (or derived
    from) the data dir, as the real node's libp2p identity."""
    n = nodes.start("--simulate", "--interval", "200")
    ids = [n.data("/info")["peer_id"]]
    wait_until(lambda: n.chain()[0] >= 1, 10, what="a block")
    for _ in range(2):
        n.restart()
        ids.append(n.data("/info")["peer_id"])
    assert len(set(ids)) == 3, ids
    for peer_id in ids:
        assert peer_id.startswith("12D3KooW") and len(peer_id) == 52
    assert n.data("/peers")["peer_id"] == ids[-1]
    # nothing about the identity is stored in the data dir
    assert sorted(p.name for p in n.data_dir.iterdir()) == ["chain.jsonl"]
    assert all(peer_id not in (n.data_dir / "chain.jsonl").read_text() for peer_id in ids)
    logged = re.findall(r"local peer id: (\S+)", n.log())
    assert logged == ids
    # a peer_id file left by an older stand-in changes nothing
    n.kill()
    (n.data_dir / "peer_id").write_text(ids[0] + "\n")
    n.start()
    assert n.data("/info")["peer_id"] not in ids
    assert (n.data_dir / "peer_id").read_text() == ids[0] + "\n"


def _stop_and_check(nodes, sig):
    """Start a producing node, stop it with `sig`; returns (node, height and hash
    before the signal, seconds to exit, the log of that run)."""
    n = nodes.start("--simulate", "--interval", "200", name=f"stop-{sig.name.lower()}")
    wait_until(lambda: n.chain()[0] >= 3, 10, what="3 blocks")
    before = n.chain()
    t0 = time.monotonic()
    n.proc.send_signal(sig)
    n.proc.wait(timeout=10)
    elapsed = time.monotonic() - t0
    n.kill()  # closes the log file
    return n, before, elapsed, n.log()


def _survived(n, before):
    lines = (n.data_dir / "chain.jsonl").read_bytes().split(b"\n")
    assert len([line for line in lines if line]) >= before[0] + 1
    n.start()
    height, _ = n.chain()
    assert height >= before[0]
    assert n.data(f"/block/{before[0]}")["block_hash"] == before[1]


def test_sigterm_ends_at_once_without_the_shutdown_path(nodes):
    n, before, elapsed, log = _stop_and_check(nodes, signal.SIGTERM)
    assert n.proc.returncode == -signal.SIGTERM, (n.proc.returncode, log)  # killed by the signal
    assert elapsed < 2, elapsed
    assert "SIGTERM ends the process at once" in log  # the start-up line says so
    assert "shutting down" not in log and "shutdown complete" not in log, log
    # every block served before the signal was already on disk
    _survived(n, before)


def test_sigint_runs_the_clean_shutdown(nodes):
    n, before, elapsed, log = _stop_and_check(nodes, signal.SIGINT)
    assert n.proc.returncode == 0, (n.proc.returncode, log)
    assert elapsed < 5, elapsed
    lines = log.splitlines()
    shutting = [i for i, l in enumerate(lines) if "INFO pulse_node: received SIGINT: shutting down" in l]
    assert len(shutting) == 1, log
    after = lines[shutting[0] + 1:]
    assert any("shutdown: chain flushed to" in l for l in after), log
    assert after and after[-1].endswith("shutdown complete"), log
    _survived(n, before)
    # a second run stopped with SIGINT again keeps everything too
    again = n.chain()
    n.proc.send_signal(signal.SIGINT)
    assert n.proc.wait(timeout=10) == 0
    n.kill()
    _survived(n, again)


def test_sigint_in_memory_mode(nodes, tmp_path):
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("x\n")
    n = nodes.start("--simulate", "--interval", "200", data_dir=blocker / "data")
    wait_until(lambda: n.chain()[0] >= 1, 10, what="a block in memory")
    n.proc.send_signal(signal.SIGINT)
    assert n.proc.wait(timeout=10) == 0
    n.kill()
    assert "shutting down" in n.log()
    assert "in-memory mode, nothing to flush" in n.log()
