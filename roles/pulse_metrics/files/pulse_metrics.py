#!/usr/bin/python3
"""pulse-metrics: read a Pulse node's API on this host and publish its metrics to CloudWatch.

One run = one sample (the systemd timer runs it every minute):

* GET /health (never rate-limited). Anything but HTTP 200 with {"success": true} means the
  node is down: publish Up=0 and exit 0 (a node that is down is what the metric reports,
  not a failure of the collector).
* Node up: GET /chain, /info, /stats, /peers (4 rate-limited requests, far below the
  node's 120/minute per client IP) and publish Up=1, ChainHeight, HeartbeatPoolSize,
  PeerCount, BlocksProduced (height delta since the last run, kept in the state file)
  and a few extras (ActiveAccounts, AvgBlockTime, CurrentTps).
* Every datapoint has the dimensions Environment and InstanceId, nothing else.
* PutMetricData is retried with exponential backoff and jitter; exit 1 when it still fails
  (the state is then left as it was, so the next run's BlocksProduced covers both periods).
* Optionally writes the same sample as a Prometheus text file (node_exporter textfile
  collector), atomically.

Credentials: boto3's usual chain (on EC2 the instance role through IMDS; in the lab the
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY of an EnvironmentFile). The endpoint URL, region,
instance id and environment come from the JSON config file (--config); an empty instance id
or region is read from the instance metadata service (IMDSv2).

Standard library only, except boto3 (imported when publishing, not for --dry-run).
"""

import argparse
import datetime
import json
import os
import random
import sys
import tempfile
import time
import urllib.error
import urllib.request

DEFAULT_CONFIG = "/etc/pulse-metrics/config.json"
DEFAULTS = {
    "node_url": "http://127.0.0.1:8080",
    "namespace": "Pulse",
    "environment": "",
    "instance_id": "",
    "region": "",
    "endpoint_url": "",
    "state_file": "/var/lib/pulse-metrics/state.json",
    "textfile": "",
    "http_timeout": 5.0,
    "publish_attempts": 4,
    "backoff_base": 1.0,
    "backoff_max": 8.0,
    "max_state_age": 300,
    "imds_url": "http://169.254.169.254",
}

# name -> (CloudWatch unit, Prometheus name, help text). The README's metric table is tested
# against this.
METRICS = {
    "Up": ("None", "pulse_up", "1 when the node answers GET /health, else 0."),
    "ChainHeight": ("Count", "pulse_chain_height", "Index of the latest block (/chain height)."),
    "BlocksProduced": ("Count", "pulse_blocks_produced",
                       "Blocks added since the previous run (height delta; absent without a fresh baseline)."),
    "PeerCount": ("Count", "pulse_peer_count", "Connected peers (/peers peer_count)."),
    "HeartbeatPoolSize": ("Count", "pulse_heartbeat_pool_size", "Heartbeats waiting for a block (/chain heartbeat_pool_size)."),
    "ActiveAccounts": ("Count", "pulse_active_accounts", "Active accounts (/info active_accounts)."),
    "AvgBlockTime": ("None", "pulse_avg_block_time", "Average block time as the node reports it (/stats avg_block_time)."),
    "CurrentTps": ("None", "pulse_current_tps", "Current transactions per second (/stats current_tps)."),
}
# The node's rate-limited routes this collector reads, once each per run.
QUERY_ROUTES = ("/chain", "/info", "/stats", "/peers")


def log(message):
    print(f"pulse-metrics: {message}", flush=True)


# ---------------------------------------------------------------- HTTP (node and IMDS)

class HttpResult:
    def __init__(self, status, body, error=None):
        self.status = status
        self.body = body
        self.error = error

    def json_data(self):
        """The node's wrapper {"success": bool, "data": ..., "error": ...} -> data, or None."""
        if self.status != 200 or self.body is None:
            return None
        try:
            doc = json.loads(self.body)
        except ValueError:
            return None
        if not isinstance(doc, dict) or doc.get("success") is not True:
            return None
        return doc.get("data")


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def http_request(url, timeout, method="GET", headers=None):
    """One request; never raises. Returns an HttpResult (status 0 when nothing answered)."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return HttpResult(response.status, response.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace") if exc.fp else ""
        return HttpResult(exc.code, body, error=f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return HttpResult(0, None, error=str(reason))


# ---------------------------------------------------------------- sampling the node

def number(value):
    """A JSON number (not a bool) as int/float, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def collect(node_url, timeout, get=http_request):
    """Read the node. Returns (sample, notes): sample maps metric names to values."""
    base = node_url.rstrip("/")
    notes = []
    health = get(base + "/health", timeout)
    if health.status != 200 or health.json_data() is None:
        notes.append(f"/health: {health.error or 'HTTP %s' % health.status}")
        return {"Up": 0}, notes

    data = {}
    for route in QUERY_ROUTES:
        result = get(base + route, timeout)
        payload = result.json_data()
        if isinstance(payload, dict):
            data[route] = payload
        else:
            notes.append(f"{route}: {result.error or 'HTTP %s, unexpected answer' % result.status}")
    chain, info, stats, peers = (data.get(r, {}) for r in QUERY_ROUTES)

    def first(*candidates):
        for candidate in candidates:
            value = number(candidate)
            if value is not None:
                return value
        return None

    sample = {
        "Up": 1,
        "ChainHeight": first(chain.get("height"), info.get("chain_height")),
        "HeartbeatPoolSize": first(chain.get("heartbeat_pool_size"), info.get("heartbeat_pool_size")),
        "PeerCount": first(peers.get("peer_count"), info.get("peer_count")),
        "ActiveAccounts": first(info.get("active_accounts"), stats.get("active_accounts")),
        "AvgBlockTime": first(stats.get("avg_block_time")),
        "CurrentTps": first(stats.get("current_tps")),
    }
    return {k: v for k, v in sample.items() if v is not None}, notes


# ---------------------------------------------------------------- BlocksProduced state

def load_state(path):
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def save_state(path, state):
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def blocks_produced(state, height, now, max_age, instance_id):
    """Height delta since the previous run, or None (no usable baseline), plus a note."""
    prev_height = number(state.get("height"))
    prev_time = number(state.get("time"))
    if prev_height is None or prev_time is None:
        return None, "no previous height: BlocksProduced starts next run"
    if state.get("instance_id") not in (None, instance_id):
        return None, "state of another instance: BlocksProduced starts next run"
    age = now - prev_time
    if age < 0 or age > max_age:
        return None, f"previous height is {int(age)} s old (> {max_age} s): BlocksProduced starts next run"
    if height < prev_height:
        return 0, f"chain height went down ({prev_height} -> {height}): node reset or reorganised"
    return int(height - prev_height), None


# ---------------------------------------------------------------- publishing

class PublishError(Exception):
    pass


def is_retryable(exc):
    """Throttling, 5xx and connection problems are retried; other client errors are not."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = response.get("Error", {}).get("Code", "")
        if "Throttl" in code or code in ("RequestLimitExceeded", "ServiceUnavailable"):
            return True
        return not 400 <= int(status or 0) < 500
    return True


def publish_with_retry(publisher, namespace, metric_data, attempts, base, cap,
                       sleep=time.sleep, rand=random.random):
    """Calls publisher(namespace, metric_data) until it succeeds; exponential backoff with up
    to 25 % jitter between attempts. Returns the number of attempts; raises PublishError."""
    attempts = max(1, int(attempts))
    for attempt in range(1, attempts + 1):
        try:
            publisher(namespace, metric_data)
            return attempt
        except Exception as exc:  # noqa: BLE001 - any failure of the publisher is handled here
            if attempt == attempts or not is_retryable(exc):
                raise PublishError(f"PutMetricData failed after {attempt} attempt(s): {exc}") from exc
            delay = min(cap, base * 2 ** (attempt - 1))
            delay += delay * 0.25 * rand()
            log(f"PutMetricData attempt {attempt} failed ({exc}); retrying in {delay:.1f} s")
            sleep(delay)
    raise PublishError("unreachable")  # pragma: no cover


def boto3_publisher(region, endpoint_url, timeout):
    """A publisher(namespace, metric_data) backed by boto3 (imported here, only when needed)."""
    import boto3  # pylint: disable=import-outside-toplevel
    from botocore.config import Config  # pylint: disable=import-outside-toplevel

    client = boto3.client(
        "cloudwatch",
        region_name=region,
        endpoint_url=endpoint_url or None,
        # One attempt per call: the retries (and their backoff) are ours, see publish_with_retry.
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                      connect_timeout=timeout, read_timeout=timeout),
    )

    def publish(namespace, metric_data):
        client.put_metric_data(Namespace=namespace, MetricData=metric_data)

    return publish


def metric_data(sample, dimensions, timestamp):
    dims = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    return [
        {"MetricName": name, "Dimensions": dims, "Timestamp": timestamp,
         "Value": float(sample[name]), "Unit": METRICS[name][0]}
        for name in METRICS if name in sample
    ]


# ---------------------------------------------------------------- Prometheus text file

def prometheus_text(sample, dimensions, now):
    labels = ",".join(f'{k.lower()}="{v}"' for k, v in dimensions.items())
    lines = []
    for name, (_unit, prom, help_text) in METRICS.items():
        if name not in sample:
            continue
        lines += [f"# HELP {prom} {help_text}", f"# TYPE {prom} gauge", f"{prom}{{{labels}}} {sample[name]}"]
    lines += ["# HELP pulse_metrics_last_run_timestamp_seconds When pulse-metrics last sampled the node.",
              "# TYPE pulse_metrics_last_run_timestamp_seconds gauge",
              f"pulse_metrics_last_run_timestamp_seconds {now:.3f}"]
    return "\n".join(lines) + "\n"


def write_textfile(path, text):
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".pulse-", suffix=".prom.tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------- instance identity (IMDSv2)

def imds_get(imds_url, path, timeout, request=http_request):
    base = imds_url.rstrip("/")
    token = request(base + "/latest/api/token", timeout, method="PUT",
                    headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    if token.status != 200 or not token.body:
        return None
    answer = request(base + "/latest/meta-data/" + path, timeout,
                     headers={"X-aws-ec2-metadata-token": token.body})
    if answer.status != 200 or not answer.body:
        return None
    return answer.body.strip()


# ---------------------------------------------------------------- main

def load_config(path):
    config = dict(DEFAULTS)
    with open(path, encoding="utf-8") as handle:
        loaded = json.load(handle)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: not a JSON object")
    # Keys starting with "_" are comments (the role writes "_managed").
    unknown = {key for key in loaded if not key.startswith("_")} - set(DEFAULTS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    config.update({key: value for key, value in loaded.items() if not key.startswith("_")})
    problems = [key for key in ("http_timeout", "publish_attempts", "backoff_base", "backoff_max", "max_state_age")
                if number(config[key]) is None or config[key] <= 0]
    problems += [key for key in DEFAULTS if isinstance(DEFAULTS[key], str) and not isinstance(config[key], str)]
    if problems:
        raise ValueError(f"{path}: bad value(s) for {', '.join(problems)}")
    if not config["environment"]:
        raise ValueError(f"{path}: environment (the Environment dimension) is empty")
    return config


def run(config, publisher_factory=None, get=http_request, sleep=time.sleep,
        clock=time.time, rand=random.random, dry_run=False):
    """One sample. Returns the exit code: 0 published (Up=0 included), 1 publishing failed,
    2 configuration or identity problem."""
    if not config["environment"]:
        log("error: no environment configured (Environment dimension)")
        return 2
    timeout = float(config["http_timeout"])
    instance_id = config["instance_id"] or imds_get(config["imds_url"], "instance-id", 2, get)
    if not instance_id:
        log("error: no instance id configured and the instance metadata service did not answer")
        return 2
    region = config["region"] or imds_get(config["imds_url"], "placement/region", 2, get)
    if not region and not dry_run:
        log("error: no region configured and the instance metadata service did not answer")
        return 2

    now = clock()
    sample, notes = collect(config["node_url"], timeout, get)
    state = load_state(config["state_file"])
    new_state = None
    if sample["Up"] and "ChainHeight" in sample:
        produced, note = blocks_produced(state, sample["ChainHeight"], now,
                                         float(config["max_state_age"]), instance_id)
        if produced is not None:
            sample["BlocksProduced"] = produced
        if note:
            notes.append(note)
        new_state = {"height": sample["ChainHeight"], "time": now, "instance_id": instance_id}

    dimensions = {"Environment": config["environment"], "InstanceId": instance_id}
    summary = " ".join(f"{name}={sample[name]}" for name in METRICS if name in sample)
    for note in notes:
        log(f"note: {note}")

    if config["textfile"] and not dry_run:
        try:
            write_textfile(config["textfile"], prometheus_text(sample, dimensions, now))
        except OSError as exc:
            log(f"warning: cannot write {config['textfile']}: {exc}")

    if dry_run:
        log(f"dry run, not published: {summary}")
        return 0
    data = metric_data(sample, dimensions, datetime.datetime.fromtimestamp(now, tz=datetime.timezone.utc))
    try:
        publisher = (publisher_factory or boto3_publisher)(region, config["endpoint_url"], timeout)
        attempts = publish_with_retry(publisher, config["namespace"], data,
                                      config["publish_attempts"], float(config["backoff_base"]),
                                      float(config["backoff_max"]), sleep=sleep, rand=rand)
    except PublishError as exc:
        log(f"error: {exc}; not published: {summary}")
        return 1
    except Exception as exc:  # noqa: BLE001 - e.g. boto3 missing or no credentials
        log(f"error: cannot publish: {exc}; not published: {summary}")
        return 1
    if new_state is not None:
        try:
            save_state(config["state_file"], new_state)
        except OSError as exc:
            log(f"warning: cannot save {config['state_file']}: {exc}")
    log(f"published {len(data)} metric(s) to {config['namespace']} "
        f"(Environment={dimensions['Environment']}, InstanceId={instance_id}, attempt {attempts}): {summary}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description="Publish the local Pulse node's metrics to CloudWatch (one run).")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"JSON config file (default {DEFAULT_CONFIG})")
    parser.add_argument("--dry-run", action="store_true",
                        help="sample and print, but publish nothing and write no state or text file")
    parser.add_argument("--check-config", action="store_true",
                        help="only check the configuration file (exit 0 when usable, 2 otherwise)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except (OSError, ValueError) as exc:
        log(f"error: cannot read the configuration: {exc}")
        return 2
    if args.check_config:
        log(f"configuration {args.config} is usable")
        return 0
    return run(config, dry_run=args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
