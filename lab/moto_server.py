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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument(
        "--bind", action="append", required=True, help="address to listen on (repeatable)"
    )
    args = parser.parse_args(argv)

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
