"""Several stand-in nodes peered over loopback: gossip, catch-up after a
restart, fork resolution."""

import json
import signal
import time

from standin_helpers import wait_converged, wait_until

INTERVAL = "300"


def make_ring(nodes, count=3):
    ring = [nodes.make("--simulate", "--interval", INTERVAL, name=f"ring{i}") for i in range(count)]
    for i, node in enumerate(ring):
        node.args += ["--peers", ring[(i + 1) % count].multiaddr]
    for node in ring:
        node.start()
    return ring


def contains_device(node, device_id):
    blocks = node.data("/blocks?offset=0&limit=200")["blocks"]
    return [b["index"] for b in blocks if any(h["device_id"] == device_id for h in b["heartbeats"])]


def test_ring_converges_and_lists_peers(nodes):
    ring = make_ring(nodes)
    height, _ = wait_converged(ring, min_height=3, timeout=15)

    ids = [n.data("/info")["peer_id"] for n in ring]
    assert len(set(ids)) == 3

    def all_peered():
        for node, own in zip(ring, ids):
            peers = node.poll("/peers")
            if peers is None or peers["peer_count"] != 2 or sorted(peers["connected_peers"]) != sorted(set(ids) - {own}):
                return False
        return True
    wait_until(all_peered, 10, what="every node to list the two others")
    # one outbound and one inbound connection each, deduplicated by peer id
    for node in ring:
        assert node.data("/info")["peer_count"] == 2
        directions = sorted(c["direction"] for c in node.data("/peers")["connections"])
        assert directions == ["inbound", "outbound"]

    # same blocks everywhere, not only the same tip
    pages = [n.data(f"/blocks?offset=0&limit={height + 1}")["blocks"] for n in ring]
    hashes = [[b["block_hash"] for b in p] for p in pages]
    assert hashes[0] == hashes[1] == hashes[2]


def test_sigkill_restart_keeps_height_and_catches_up(nodes):
    ring = make_ring(nodes)
    wait_converged(ring, min_height=3, timeout=15)
    victim = ring[1]
    peer_id = victim.data("/info")["peer_id"]
    before, _ = victim.chain()

    victim.kill(signal.SIGKILL)
    time.sleep(1.0)  # the others go on producing
    log_len = len(victim.log())
    victim.start()
    after, _ = victim.chain()
    assert after >= before, (before, after)
    new_id = victim.data("/info")["peer_id"]
    assert new_id != peer_id  # a new identity at every start, as the real node

    wait_converged(ring, min_height=before + 4, timeout=15)
    restart_log = victim.log()[log_len:]
    assert "synced" in restart_log or "chain reorganisation" in restart_log, restart_log
    # ring[0] dials the victim: it reconnects (with backoff) and lists it under its
    # new id; the old id is gone from both neighbours
    def relisted():
        listed = [n.poll("/peers") for n in (ring[0], ring[2])]
        return all(p is not None and new_id in p["connected_peers"] and peer_id not in p["connected_peers"]
                   for p in listed)
    wait_until(relisted, 12, what="ring0 and ring2 to list the restarted node under its new id")


def test_sigterm_restart_with_a_new_peer_id_rejoins(nodes):
    """systemd stops the node with SIGTERM (no shutdown path); it comes back with
    a new peer id, keeps its chain and catches up with the others."""
    ring = make_ring(nodes)
    wait_converged(ring, min_height=3, timeout=15)
    victim = ring[2]
    old_id = victim.data("/info")["peer_id"]
    before = victim.chain()
    victim.kill(signal.SIGTERM)
    assert victim.proc.returncode == -signal.SIGTERM
    assert "shutting down" not in victim.log()
    victim.start()
    assert victim.data(f"/block/{before[0]}")["block_hash"] == before[1]
    new_id = victim.data("/info")["peer_id"]
    assert new_id != old_id
    wait_converged(ring, min_height=before[0] + 3, timeout=15)
    def relisted():
        listed = [n.poll("/peers") for n in ring[:2]]
        return all(p is not None and new_id in p["connected_peers"] and old_id not in p["connected_peers"]
                   for p in listed)
    wait_until(relisted, 12, what="the others to list the new id instead of the old one")


def test_forks_resolve_to_one_chain_and_persist(nodes):
    a = nodes.start("--simulate", "--interval", INTERVAL, name="fork-a")
    b = nodes.start("--simulate", "--interval", INTERVAL, name="fork-b")
    # distinct submitted heartbeats make the two isolated chains differ
    assert a.get("/pulse", method="POST", body={"device_id": "only-on-a", "heart_rate": 61})[0] == 200
    assert b.get("/pulse", method="POST", body={"device_id": "only-on-b", "heart_rate": 62})[0] == 200
    ka = wait_until(lambda: contains_device(a, "only-on-a"), 10, what="a's heartbeat in a block")[0]
    wait_until(lambda: contains_device(b, "only-on-b"), 10, what="b's heartbeat in a block")
    wait_until(lambda: b.chain()[0] >= ka, 10, what="b to reach a's block height")
    assert a.data(f"/block/{ka}")["block_hash"] != b.data(f"/block/{ka}")["block_hash"]

    # c bridges the two: one of them must switch to the other's chain
    c = nodes.start("--simulate", "--interval", INTERVAL, "--peers", f"{a.multiaddr},{b.multiaddr}", name="fork-c")
    wait_converged([a, b, c], min_height=ka + 2, timeout=15)
    reorganised = [n for n in (a, b) if "chain reorganisation" in n.log()]
    assert reorganised, "neither a nor b switched chains"

    # the loser's submitted heartbeat went back to its pool and made it into the common chain
    wait_until(lambda: all(contains_device(n, "only-on-a") and contains_device(n, "only-on-b") for n in (a, b, c)),
               15, what="both submitted heartbeats in the common chain")
    tip = wait_converged([a, b, c], min_height=ka + 2, timeout=15)

    # the switch was persisted: the loser's chain file holds the common chain
    loser = reorganised[0]
    loser.kill()
    lines = (loser.data_dir / "chain.jsonl").read_text().splitlines()
    on_disk = [json.loads(line)["block_hash"] for line in lines]
    common = [blk["block_hash"] for blk in c.data(f"/blocks?offset=0&limit={len(on_disk)}")["blocks"]]
    assert len(on_disk) >= tip[0] + 1
    assert on_disk[:tip[0] + 1] == common[:tip[0] + 1]
    for i, line in enumerate(lines):
        assert json.loads(line)["index"] == i
