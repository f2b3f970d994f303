"""The ledger routes of the node contract on the stand-in: GET /balance/:pubkey,
GET /accounts, POST /tx (shape checked only), and their rate limits."""

import pytest

from standin_helpers import assert_wrapper, wait_until


def balance(node, pubkey):
    return node.data(f"/balance/{pubkey}")["balance"]


def accounts(node):
    return {a["pubkey"]: a for a in node.data("/accounts")}


def block_with(node, predicate):
    blocks = node.data("/blocks?offset=0&limit=200")["blocks"]
    return next((b for b in blocks if predicate(b)), None)


def test_balance_accounts_and_transfers(nodes):
    n = nodes.start("--interval", "200")  # no --simulate: blocks only from submitted heartbeats
    # an account the chain does not know has balance 0 (not an error)
    status, body, _ = n.get("/balance/nobody")
    assert (status, body) == (200, {"success": True, "data": {"pubkey": "nobody", "balance": 0}})
    assert n.data("/accounts") == []

    # a heartbeat earns the whole block reward (10) for its account
    assert n.get("/pulse", method="POST", body={"device_id": "alice", "heart_rate": 72})[0] == 200
    wait_until(lambda: n.chain()[0] >= 1, 5, what="block 1")
    assert balance(n, "alice") == 10
    listed = accounts(n)
    assert set(listed) == {"alice"}
    assert listed["alice"]["heartbeats"] == 1
    assert listed["alice"]["last_seen"] == n.data("/block/1")["timestamp"]

    # a transfer: accepted on shape, pooled, then in the next block with a heartbeat
    tx = {"from": "alice", "to": "bob", "amount": 4, "signature": "3045022100deadbeef", "nonce": 1}
    status, body, _ = n.get("/tx", method="POST", body=tx)
    assert status == 200, body
    assert body["data"]["accepted"] is True and body["data"]["tx_pool_size"] == 1
    tx_id = body["data"]["tx_id"]
    assert len(tx_id) == 64
    # the same signed transaction again is refused
    status, body, _ = n.get("/tx", method="POST", body=tx)
    assert status == 409 and body == {"success": False, "error": "Transaction already known"}
    # bob cannot pay what he does not have: included in the block, but without effect
    broke = {"sender": "bob", "recipient": "dave", "amount": 100, "signature": "3045022100feed"}
    assert n.get("/tx", method="POST", body={"transaction": broke})[0] == 200

    assert n.get("/pulse", method="POST", body={"device_id": "carol", "heart_rate": 72})[0] == 200
    block = wait_until(lambda: block_with(n, lambda b: b["transactions"]), 5, what="a block with the transactions")
    assert [t["tx_id"] for t in block["transactions"]][0] == tx_id
    assert block["transactions"][0] == {"tx_id": tx_id, "from": "alice", "to": "bob", "amount": 4,
                                        "timestamp": block["transactions"][0]["timestamp"],
                                        "signature": "3045022100deadbeef"}
    assert [h["device_id"] for h in block["heartbeats"]] == ["carol"]

    assert balance(n, "alice") == 6
    assert balance(n, "bob") == 4
    assert balance(n, "carol") == 10
    assert balance(n, "dave") == 0
    listed = accounts(n)
    assert list(listed) == ["alice", "bob", "carol"]  # sorted; dave got nothing
    assert listed["bob"]["heartbeats"] == 0
    stats = n.data("/stats")
    assert stats["active_accounts"] == 3 == n.data("/info")["active_accounts"]
    assert sum(a["balance"] for a in listed.values()) == pytest.approx(stats["total_minted"])
    # once in the chain, the transaction is still known
    assert n.get("/tx", method="POST", body=tx)[0] == 409

    # balances are derived from the chain: the same after a restart
    n.restart()
    assert [balance(n, k) for k in ("alice", "bob", "carol")] == [6, 4, 10]


def test_tx_shape_checks(nodes):
    n = nodes.start()
    good = {"from": "alice", "to": "bob", "amount": 1.5, "signature": "00ff"}
    bad = [
        b"not json",
        b"[1, 2]",
        {k: v for k, v in good.items() if k != "from"},
        {k: v for k, v in good.items() if k != "to"},
        {k: v for k, v in good.items() if k != "amount"},
        {k: v for k, v in good.items() if k != "signature"},
        dict(good, amount="1.5"),
        dict(good, amount=0),
        dict(good, amount=-3),
        dict(good, amount=1e13),
        dict(good, signature=""),
        dict(good, signature=12),
        dict(good, to="has space"),
        dict(good, to="a/b"),
        dict(good, timestamp="yesterday"),
    ]
    for body in bad:
        status, answer, _ = n.get("/tx", method="POST", body=body)
        assert status == 400, (body, answer)
        assert_wrapper(status, answer, body)
        assert answer["error"].startswith("Invalid transaction"), answer
    status, answer, _ = n.get("/tx", method="POST", body=dict(good, timestamp=1700000000123, memo="hi"))
    assert status == 200, answer
    assert n.get("/tx")[0] == 405
    assert n.get("/balance/alice", method="POST", body=b"")[0] == 405
    assert n.get("/balance/")[0] == 400
    assert n.get("/balance/a%20b")[0] == 400
    assert n.data("/balance/x%2Dy") == {"pubkey": "x-y", "balance": 0}


def test_ledger_routes_are_rate_limited(nodes):
    n = nodes.start()
    # GET /balance and /accounts share the 120/min query budget
    statuses = [n.get("/balance/alice" if i % 2 else "/accounts")[0] for i in range(120)]
    assert statuses == [200] * 120
    status, body, _ = n.get("/balance/alice")
    assert (status, body) == (429, {"success": False, "error": "Rate limit exceeded"})
    assert n.get("/accounts")[0] == 429
    assert n.get("/health")[0] == 200
    # POST /tx has its own 30/min, like POST /pulse
    posted = [n.get("/tx", method="POST", body={"from": "a", "to": "b", "amount": 1, "signature": f"s{i}"})[0]
              for i in range(31)]
    assert posted == [200] * 30 + [429]
    assert n.get("/pulse", method="POST", body={"device_id": "still-allowed"})[0] == 200
