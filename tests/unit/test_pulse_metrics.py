"""Unit tests of the pulse-metrics collector (roles/pulse_metrics/files/pulse_metrics.py),
imported by path: parsing of the node's answers, BlocksProduced state, Up=0 when the node
refuses connections, retry/backoff with a fake publisher, the Prometheus text file, IMDSv2."""

import importlib.util
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "pulse_metrics" / "files" / "pulse_metrics.py"


def _load():
    spec = importlib.util.spec_from_file_location("pulse_metrics_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pm = _load()


def wrap(data):
    return json.dumps({"success": True, "data": data, "error": None})


NODE = {
    "/health": (200, wrap("Pulse node is alive")),
    "/chain": (200, wrap({"height": 120, "latest_hash": "ab" * 32, "heartbeat_pool_size": 4})),
    "/info": (200, wrap({"version": "1.2.0", "chain_height": 121, "active_accounts": 9,
                         "heartbeat_pool_size": 5, "ws_clients": 0, "peer_id": "12D3KooWx", "peer_count": 2})),
    "/stats": (200, wrap({"chain_length": 121, "total_minted": 1200, "active_accounts": 9,
                          "current_tps": 0.5, "avg_block_time": 500.0, "total_security": 1.0,
                          "current_block_reward": 10, "halving_epoch": 0, "cumulative_weight": 3.0,
                          "inflation_rate": 1.0})),
    "/peers": (200, wrap({"peer_id": "12D3KooWx", "peer_count": 0, "connected_peers": []})),
}
RATE_LIMITED = (429, '{"success":false,"error":"Rate limit exceeded"}')


class FakeGet:
    """Stands in for http_request: answers from a route table, records the calls."""

    def __init__(self, routes):
        self.routes = routes
        self.calls = []

    def __call__(self, url, timeout, method="GET", headers=None):
        path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
        self.calls.append((method, path))
        if path not in self.routes:
            return pm.HttpResult(0, None, error="[Errno 111] Connection refused")
        status, body = self.routes[path]
        return pm.HttpResult(status, body, error=None if status == 200 else f"HTTP {status}")


class FakePublisher:
    """publisher_factory + publisher: fails `failures` times (with `error`), then records."""

    def __init__(self, failures=0, error=None):
        self.failures = failures
        self.error = error or ConnectionError("endpoint not reachable")
        self.calls = 0
        self.published = []
        self.factory_args = None

    def factory(self, region, endpoint_url, timeout):
        self.factory_args = (region, endpoint_url, timeout)
        return self.publish

    def publish(self, namespace, metric_data):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        self.published.append((namespace, metric_data))

    def values(self):
        assert len(self.published) == 1
        return {d["MetricName"]: d["Value"] for d in self.published[0][1]}


class Clock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def config(tmp_path):
    return dict(pm.DEFAULTS, environment="unit", instance_id="i-0123456789abcdef0", region="us-east-2",
                endpoint_url="http://127.0.0.1:1", state_file=str(tmp_path / "state" / "state.json"))


def run(config, routes=NODE, publisher=None, clock=None, sleeps=None, **kwargs):
    publisher = publisher or FakePublisher()
    sleeps = [] if sleeps is None else sleeps
    get = FakeGet(routes)
    code = pm.run(config, publisher_factory=publisher.factory, get=get, sleep=sleeps.append,
                  clock=clock or Clock(), rand=lambda: 0.0, **kwargs)
    return code, publisher, get


# ------------------------------------------------------------------ parsing


def test_collect_reads_the_contract_routes():
    sample, notes = pm.collect("http://127.0.0.1:8080", 5, FakeGet(NODE))
    assert notes == []
    assert sample == {"Up": 1, "ChainHeight": 120, "HeartbeatPoolSize": 4, "PeerCount": 0,
                      "ActiveAccounts": 9, "AvgBlockTime": 500.0, "CurrentTps": 0.5}


def test_collect_makes_four_rate_limited_requests_and_health():
    get = FakeGet(NODE)
    pm.collect("http://127.0.0.1:8080/", 5, get)
    assert get.calls == [("GET", "/health"), ("GET", "/chain"), ("GET", "/info"), ("GET", "/stats"), ("GET", "/peers")]
    assert len([c for c in get.calls if c[1] != "/health"]) <= 4


def test_collect_falls_back_to_info_when_a_route_is_rate_limited():
    routes = dict(NODE, **{"/chain": RATE_LIMITED, "/peers": RATE_LIMITED})
    sample, notes = pm.collect("http://node", 5, FakeGet(routes))
    assert sample["ChainHeight"] == 121 and sample["HeartbeatPoolSize"] == 5 and sample["PeerCount"] == 2
    assert any(n.startswith("/chain: HTTP 429") for n in notes)


def test_collect_ignores_bad_json_and_non_numbers():
    routes = dict(NODE, **{"/chain": (200, "not json"),
                           "/info": (200, wrap({"chain_height": "121", "peer_count": True})),
                           "/stats": (200, json.dumps({"success": False, "data": None, "error": "x"}))})
    sample, _ = pm.collect("http://node", 5, FakeGet(routes))
    assert sample == {"Up": 1, "PeerCount": 0}


@pytest.mark.parametrize("health", [(503, "busy"), (200, json.dumps({"success": False})), (200, "garbage")])
def test_unhealthy_answers_mean_down(health):
    get = FakeGet(dict(NODE, **{"/health": health}))
    sample, notes = pm.collect("http://node", 5, get)
    assert sample == {"Up": 0} and notes
    assert get.calls == [("GET", "/health")]  # a down node is not asked anything else


def test_metric_data_has_exactly_environment_and_instance_dimensions(config):
    code, publisher, _ = run(config)
    assert code == 0
    namespace, data = publisher.published[0]
    assert namespace == "Pulse"
    for datum in data:
        assert datum["Dimensions"] == [{"Name": "Environment", "Value": "unit"},
                                       {"Name": "InstanceId", "Value": "i-0123456789abcdef0"}]
        assert datum["Unit"] == pm.METRICS[datum["MetricName"]][0]
    assert publisher.factory_args == ("us-east-2", "http://127.0.0.1:1", 5.0)


# ------------------------------------------------------------------ BlocksProduced state


def test_first_run_has_no_blocks_produced_and_saves_a_baseline(config):
    code, publisher, _ = run(config)
    assert code == 0
    assert "BlocksProduced" not in publisher.values()
    assert publisher.values()["ChainHeight"] == 120
    state = json.loads(Path(config["state_file"]).read_text())
    assert state == {"height": 120, "time": 1_700_000_000.0, "instance_id": "i-0123456789abcdef0"}


def test_second_run_publishes_the_height_delta(config):
    clock = Clock()
    run(config, clock=clock)
    clock.now += 60
    routes = dict(NODE, **{"/chain": (200, wrap({"height": 132, "heartbeat_pool_size": 1}))})
    code, publisher, _ = run(config, routes=routes, clock=clock)
    assert code == 0
    assert publisher.values()["BlocksProduced"] == 12
    assert json.loads(Path(config["state_file"]).read_text())["height"] == 132


def test_a_stale_baseline_is_not_used(config):
    clock = Clock()
    run(config, clock=clock)
    clock.now += config["max_state_age"] + 1
    code, publisher, _ = run(config, clock=clock)
    assert code == 0 and "BlocksProduced" not in publisher.values()


def test_height_going_down_gives_zero_and_a_new_baseline(config):
    clock = Clock()
    run(config, clock=clock)
    clock.now += 60
    routes = dict(NODE, **{"/chain": (200, wrap({"height": 3, "heartbeat_pool_size": 0}))})
    code, publisher, _ = run(config, routes=routes, clock=clock)
    assert code == 0 and publisher.values()["BlocksProduced"] == 0
    assert json.loads(Path(config["state_file"]).read_text())["height"] == 3


def test_a_corrupt_state_file_is_a_missing_baseline(config):
    Path(config["state_file"]).parent.mkdir(parents=True)
    Path(config["state_file"]).write_text("{not json")
    code, publisher, _ = run(config)
    assert code == 0 and "BlocksProduced" not in publisher.values()
    assert json.loads(Path(config["state_file"]).read_text())["height"] == 120


def test_state_of_another_instance_is_not_used():
    produced, note = pm.blocks_produced({"height": 1, "time": 0, "instance_id": "i-other"}, 5, 10, 300, "i-me")
    assert produced is None and "another instance" in note


def test_state_is_kept_when_publishing_fails(config):
    clock = Clock()
    run(config, clock=clock)
    before = Path(config["state_file"]).read_text()
    clock.now += 60
    code, _, _ = run(config, publisher=FakePublisher(failures=99), clock=clock)
    assert code == 1
    assert Path(config["state_file"]).read_text() == before
    # The next successful run covers both periods.
    clock.now += 60
    routes = dict(NODE, **{"/chain": (200, wrap({"height": 150, "heartbeat_pool_size": 0}))})
    code, publisher, _ = run(config, routes=routes, clock=clock)
    assert code == 0 and publisher.values()["BlocksProduced"] == 30


def test_state_is_kept_when_the_node_is_down(config):
    clock = Clock()
    run(config, clock=clock)
    before = Path(config["state_file"]).read_text()
    clock.now += 60
    code, publisher, _ = run(config, routes={}, clock=clock)
    assert code == 0 and publisher.values() == {"Up": 0.0}
    assert Path(config["state_file"]).read_text() == before


# ------------------------------------------------------------------ node down: Up=0, exit 0


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_publishes_up_zero_and_exits_zero(config):
    config["node_url"] = f"http://127.0.0.1:{_closed_port()}"
    publisher = FakePublisher()
    code = pm.run(config, publisher_factory=publisher.factory, sleep=lambda s: None, clock=Clock())
    assert code == 0
    assert publisher.values() == {"Up": 0.0}
    assert not Path(config["state_file"]).exists()


def test_main_with_a_node_that_is_down_exits_zero(tmp_path, monkeypatch, capsys):
    cfg = dict(environment="unit", instance_id="i-0123456789abcdef0", region="us-east-2",
               node_url=f"http://127.0.0.1:{_closed_port()}", state_file=str(tmp_path / "s.json"))
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    publisher = FakePublisher()
    monkeypatch.setattr(pm, "boto3_publisher", publisher.factory)
    assert pm.main(["--config", str(tmp_path / "config.json")]) == 0
    assert publisher.values() == {"Up": 0.0}
    assert "Up=0" in capsys.readouterr().out


# ------------------------------------------------------------------ retry / backoff


def test_publish_is_retried_with_exponential_backoff(config):
    sleeps = []
    publisher = FakePublisher(failures=3)
    code, _, _ = run(config, publisher=publisher, sleeps=sleeps)
    assert code == 0 and publisher.calls == 4
    assert sleeps == [1.0, 2.0, 4.0]


def test_backoff_is_capped_and_jittered():
    sleeps = []
    publisher = FakePublisher(failures=5)
    attempts = pm.publish_with_retry(publisher.publish, "Pulse", [], attempts=6, base=1, cap=3,
                                     sleep=sleeps.append, rand=lambda: 1.0)
    assert attempts == 6
    assert sleeps == [1.25, 2.5, 3.75, 3.75, 3.75]


def test_publishing_gives_up_after_the_attempts(config, capsys):
    sleeps = []
    publisher = FakePublisher(failures=99)
    code, _, _ = run(config, publisher=publisher, sleeps=sleeps)
    assert code == 1
    assert publisher.calls == config["publish_attempts"] == 4
    assert len(sleeps) == 3
    assert "failed after 4 attempt(s)" in capsys.readouterr().out


class FakeClientError(Exception):
    def __init__(self, status, code):
        super().__init__(code)
        self.response = {"ResponseMetadata": {"HTTPStatusCode": status}, "Error": {"Code": code}}


def test_client_errors_are_not_retried_but_throttling_is():
    assert not pm.is_retryable(FakeClientError(403, "AccessDenied"))
    assert not pm.is_retryable(FakeClientError(400, "InvalidParameterValue"))
    assert pm.is_retryable(FakeClientError(400, "Throttling"))
    assert pm.is_retryable(FakeClientError(500, "InternalFailure"))
    assert pm.is_retryable(ConnectionError("refused"))
    publisher = FakePublisher(failures=99, error=FakeClientError(403, "AccessDenied"))
    with pytest.raises(pm.PublishError):
        pm.publish_with_retry(publisher.publish, "Pulse", [], 4, 1, 8, sleep=lambda s: None)
    assert publisher.calls == 1


def test_a_publisher_factory_failure_is_exit_one(config):
    def broken_factory(region, endpoint_url, timeout):
        raise ModuleNotFoundError("No module named 'boto3'")

    code = pm.run(config, publisher_factory=broken_factory, get=FakeGet(NODE), sleep=lambda s: None, clock=Clock())
    assert code == 1


# ------------------------------------------------------------------ configuration and identity


def test_missing_environment_or_identity_is_exit_two(config):
    assert run(dict(config, environment=""))[0] == 2
    # No instance id and no metadata service: exit 2, nothing published.
    code, publisher, _ = run(dict(config, instance_id="", imds_url=f"http://127.0.0.1:{_closed_port()}"))
    assert code == 2 and publisher.published == []


def test_instance_id_and_region_from_imdsv2(config):
    routes = dict(NODE, **{"/latest/api/token": (200, "TOKEN"),
                           "/latest/meta-data/instance-id": (200, "i-0abc"),
                           "/latest/meta-data/placement/region": (200, "eu-west-1\n")})
    code, publisher, get = run(dict(config, instance_id="", region=""), routes=routes)
    assert code == 0
    assert ("PUT", "/latest/api/token") in get.calls
    assert publisher.published[0][1][0]["Dimensions"][1] == {"Name": "InstanceId", "Value": "i-0abc"}
    assert publisher.factory_args[0] == "eu-west-1"


def test_load_config_refuses_unknown_keys(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"environment": "x", "enviroment": "typo"}))
    with pytest.raises(ValueError, match="enviroment"):
        pm.load_config(path)
    path.write_text(json.dumps({"environment": "x"}))
    assert pm.load_config(path)["node_url"] == "http://127.0.0.1:8080"


def test_dry_run_publishes_and_writes_nothing(config, tmp_path):
    config["textfile"] = str(tmp_path / "pulse.prom")
    code, publisher, _ = run(config, dry_run=True)
    assert code == 0 and publisher.calls == 0 and publisher.factory_args is None
    assert not Path(config["textfile"]).exists() and not Path(config["state_file"]).exists()


# ------------------------------------------------------------------ Prometheus text file


def test_textfile_is_written_even_when_publishing_fails(config, tmp_path):
    config["textfile"] = str(tmp_path / "pulse.prom")
    code, _, _ = run(config, publisher=FakePublisher(failures=99))
    assert code == 1
    text = Path(config["textfile"]).read_text()
    assert 'pulse_up{environment="unit",instanceid="i-0123456789abcdef0"} 1' in text
    assert 'pulse_chain_height{environment="unit",instanceid="i-0123456789abcdef0"} 120' in text
    assert "# TYPE pulse_peer_count gauge" in text
    assert text.endswith("\n")
    assert list(tmp_path.glob(".pulse-*")) == []  # no temporary file left behind


# ------------------------------------------------------------------ over real HTTP


class _Node(BaseHTTPRequestHandler):
    routes = NODE
    seen = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        _Node.seen.append(self.path)
        status, body = self.routes.get(self.path, (404, '{"success":false,"error":"Not found"}'))
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_against_a_real_http_server(config):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Node)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    _Node.seen = []
    try:
        config["node_url"] = f"http://127.0.0.1:{server.server_address[1]}"
        publisher = FakePublisher()
        code = pm.run(config, publisher_factory=publisher.factory, sleep=lambda s: None, clock=Clock())
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0
    assert sorted(_Node.seen) == ["/chain", "/health", "/info", "/peers", "/stats"]
    values = publisher.values()
    assert values["Up"] == 1.0 and values["ChainHeight"] == 120.0 and values["PeerCount"] == 0.0
    assert values["HeartbeatPoolSize"] == 4.0


# ------------------------------------------------------------------ the real boto3 publisher, on moto in-process


def test_boto3_publisher_on_moto(config, monkeypatch):
    moto = pytest.importorskip("moto")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unit-not-a-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unit-not-a-secret")
    with moto.mock_aws():
        import boto3

        clock = Clock(__import__("time").time())
        config["endpoint_url"] = ""
        assert pm.run(config, get=FakeGet(NODE), sleep=lambda s: None, clock=clock) == 0
        client = boto3.client("cloudwatch", region_name="us-east-2")
        listed = client.list_metrics(Namespace="Pulse")["Metrics"]
        names = {m["MetricName"] for m in listed}
        assert {"Up", "ChainHeight", "PeerCount", "HeartbeatPoolSize"} <= names
        assert all({d["Name"] for d in m["Dimensions"]} == {"Environment", "InstanceId"} for m in listed)


def test_check_config(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"_managed": "Ansible managed", "environment": "x", "http_timeout": 5}))
    assert pm.main(["--config", str(path), "--check-config"]) == 0
    for bad in ({"environment": ""}, {"environment": "x", "publish_attempts": 0},
                {"environment": "x", "region": 5}, {"environment": "x", "max_state_age": "300"}):
        path.write_text(json.dumps(bad))
        assert pm.main(["--config", str(path), "--check-config"]) == 2
    path.write_text("[]")
    assert pm.main(["--config", str(path), "--check-config"]) == 2
    assert pm.main(["--config", str(tmp_path / "missing.json"), "--check-config"]) == 2
