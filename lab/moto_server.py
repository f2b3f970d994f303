"""The lab's embedded AWS: one moto backend served on several addresses.

moto's own ``moto_server`` binds one address. The lab needs the same state on the
loopback address (for the playbooks on the controller) and on the lab services
gateway (for code running inside the lab instances), and nowhere else. Both listeners
here share one WSGI application, so they share one in-memory AWS.

Usage: python lab/moto_server.py --port 5000 --bind 127.0.0.1 --bind 198.18.0.1
"""

import argparse
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


def treat_lab_endpoint_as_tls():
    """The lab's moto endpoint stands for AWS's HTTPS endpoint.

    moto evaluates bucket policies but ignores their conditions, so the usual "deny when
    aws:SecureTransport is false" statement would deny every request. In the lab such a
    statement is stored (and asserted by the tests) but never applies: every lab request is
    taken as arriving over TLS.
    """
    from moto.iam import access_control

    original = access_control.IAMPolicyStatement.is_action_permitted

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        condition = self._statement.get("Condition") or {}
        secure = (condition.get("Bool") or {}).get("aws:SecureTransport")
        if str(secure).lower() == "false":
            return access_control.PermissionResult.NEUTRAL
        return original(self, action, resource, principal, incoming_condition_values)

    access_control.IAMPolicyStatement.is_action_permitted = is_action_permitted


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument(
        "--bind", action="append", required=True, help="address to listen on (repeatable)"
    )
    args = parser.parse_args(argv)

    treat_lab_endpoint_as_tls()
    app = DomainDispatcherApplication(create_backend_app)
    servers = [
        make_server(addr, args.port, app, threaded=True, request_handler=MotoRequestHandler)
        for addr in args.bind
    ]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    print(
        "moto listening on " + ", ".join(f"{a}:{args.port}" for a in args.bind),
        flush=True,
    )

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for server in servers:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
