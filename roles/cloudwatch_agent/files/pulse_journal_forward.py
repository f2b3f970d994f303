#!/usr/bin/python3
"""pulse-journal-forward: append journal entries, as text lines, to a file a log shipper tails.

    pulse-journal-forward --output /var/log/pulse/pulse-node.log \
        --cursor-file /var/lib/pulse-log-forward/pulse-node.cursor --unit pulse-node.service

Follows `journalctl --follow --output=json` (one unit, or the whole journal, optionally up to a
priority) and writes one line per entry:

    2026-01-01T12:00:00.123456+0000 <host> <identifier>[<pid>]: <message>

(a message of several lines keeps its newlines: the continuation lines do not start with a
timestamp, which is how the CloudWatch agent's multi_line_start_pattern joins them).

* Resumes exactly where it stopped: the cursor of the last entry written is saved (atomically,
  at most once a second, and on exit) and the next start asks journalctl for the entries
  after it - no line lost or repeated across restarts and reboots (journald of systemd 252
  does not save --cursor-file when a --follow is stopped, hence this program). Without a
  cursor it starts at the beginning of the current boot.
* Log rotation: reopens the output on SIGHUP (`systemctl reload`), and by itself when the
  file was renamed or removed (checked every second), so logrotate needs no copytruncate.
* SIGTERM/SIGINT: saves the cursor and exits 0. journalctl ending: exits 1 (systemd restarts
  it); an unusable saved cursor is dropped first, so the restart begins at the boot.

Standard library only.
"""

import argparse
import datetime
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


def log(message):
    print(f"pulse-journal-forward: {message}", file=sys.stderr, flush=True)


def field(entry, name):
    """A journal field as text. journalctl's JSON gives a field with several values as a list
    (the first is used) and binary data as a list of byte values."""
    value = entry.get(name)
    if isinstance(value, list):
        if value and all(isinstance(b, int) for b in value):
            return bytes(value).decode("utf-8", "replace")
        value = value[0] if value else None
        if isinstance(value, list):
            return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def format_entry(entry, default_host):
    try:
        usec = int(field(entry, "__REALTIME_TIMESTAMP"))
    except ValueError:
        usec = int(time.time() * 1_000_000)
    stamp = datetime.datetime.fromtimestamp(usec // 1_000_000, tz=datetime.timezone.utc)
    host = field(entry, "_HOSTNAME") or default_host
    ident = field(entry, "SYSLOG_IDENTIFIER") or field(entry, "_COMM") or "-"
    pid = field(entry, "SYSLOG_PID") or field(entry, "_PID")
    tag = f"{ident}[{pid}]" if pid else ident
    message = field(entry, "MESSAGE").rstrip("\n")
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{usec % 1_000_000:06d}+0000 {host} {tag}: {message}\n"


def read_cursor(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def save_cursor(path, cursor):
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".cursor-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(cursor + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def journalctl_command(args, cursor):
    cmd = [args.journalctl, "--follow", "--output=json", "--no-pager", "--lines=all"]
    if args.unit:
        cmd.append(f"--unit={args.unit}")
    if args.priority:
        cmd.append(f"--priority={args.priority}")
    cmd.append(f"--after-cursor={cursor}" if cursor else "--boot")
    return cmd


class Output:
    """The output file, opened for appending; reopened after a rotation."""

    def __init__(self, path):
        self.path = path
        self.fd = None
        self.open()

    def open(self):
        if self.fd is not None:
            os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def rotated(self):
        try:
            return os.stat(self.path).st_ino != os.fstat(self.fd).st_ino
        except FileNotFoundError:
            return True

    def write(self, text):
        data = text.encode("utf-8", "replace")
        while data:
            written = os.write(self.fd, data)
            data = data[written:]


class Forwarder:
    def __init__(self, args):
        self.args = args
        self.host = socket.gethostname()
        self.stop = False
        self.reopen = False
        self.cursor = read_cursor(args.cursor_file)
        self.saved = self.cursor
        self.saved_at = 0.0
        self.written = 0

    def on_stop(self, signum, frame):  # pylint: disable=unused-argument
        self.stop = True

    def on_hup(self, signum, frame):  # pylint: disable=unused-argument
        self.reopen = True

    def save(self, force=False):
        if self.cursor and self.cursor != self.saved and (force or time.monotonic() - self.saved_at >= 1):
            save_cursor(self.args.cursor_file, self.cursor)
            self.saved = self.cursor
            self.saved_at = time.monotonic()

    def handle(self, lines, output):
        text = []
        cursor = None
        for line in lines:
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                log(f"skipped a line journalctl gave that is not JSON: {line[:80]!r}")
                continue
            text.append(format_entry(entry, self.host))
            cursor = field(entry, "__CURSOR") or cursor
        if text:
            output.write("".join(text))
            self.written += len(text)
        if cursor:
            self.cursor = cursor

    def run(self):
        output = Output(self.args.output)
        used_cursor = self.cursor
        cmd = journalctl_command(self.args, used_cursor)
        log(f"following the journal ({self.args.unit or 'all units'}) into {self.args.output}, "
            + ("after the saved cursor" if used_cursor else "from the start of this boot"))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)  # pylint: disable=consider-using-with
        stream = proc.stdout.fileno()
        pending = b""
        ended = False
        try:
            while not self.stop:
                ready = select.select([stream], [], [], 1.0)[0]
                if self.reopen or output.rotated():
                    self.reopen = False
                    output.open()
                if ready:
                    chunk = os.read(stream, 1 << 16)
                    if not chunk:
                        ended = True
                        break
                    lines = (pending + chunk).split(b"\n")
                    pending = lines.pop()
                    self.handle([line.decode("utf-8", "replace") for line in lines], output)
                self.save()
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
            self.save(force=True)
        if ended:
            code = proc.wait()
            if used_cursor and self.written == 0 and code != 0:
                log(f"journalctl failed ({code}) with the saved cursor; dropping it")
                try:
                    os.unlink(self.args.cursor_file)
                except FileNotFoundError:
                    pass
            log(f"journalctl ended (exit {code})")
            return 1
        return 0


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Append journal entries to a text file, resuming after restarts.")
    parser.add_argument("--output", required=True, help="file the lines are appended to")
    parser.add_argument("--cursor-file", required=True, help="where the last written entry's cursor is kept")
    parser.add_argument("--unit", help="only this unit's entries (journalctl --unit); default: the whole journal")
    parser.add_argument("--priority", choices=PRIORITIES, help="only entries up to this priority")
    parser.add_argument("--journalctl", default="journalctl", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    forwarder = Forwarder(args)
    signal.signal(signal.SIGTERM, forwarder.on_stop)
    signal.signal(signal.SIGINT, forwarder.on_stop)
    signal.signal(signal.SIGHUP, forwarder.on_hup)
    return forwarder.run()


if __name__ == "__main__":
    sys.exit(main())
