"""A local SMTP sink for tokend's email two-factor tests.

Accepts every message on 127.0.0.1:PORT (aiosmtpd, from PyPI) and writes
each one, before answering 250, to DIR as `<n>.eml` (written under a
temporary name, then renamed, so a reader never sees half a message). The
tests read the mailed code from there; SMTP_SINK_DIR / --dir names DIR.

    python tests/python/smtp_sink.py --port 2526 --dir /tmp/tokend-mail
"""

import argparse
import itertools
import os
import signal
import threading

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count()
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            n = next(self.counter)
        name = os.path.join(self.directory, f"{os.getpid()}-{n:06d}.eml")
        rcpt = ", ".join(envelope.rcpt_tos)
        content = f"X-Envelope-To: {rcpt}\r\n".encode() + envelope.original_content
        tmp = name + ".tmp"
        with open(tmp, "wb") as f:
            f.write(content)
        os.replace(tmp, name)
        return "250 OK"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", default=os.environ.get("SMTP_SINK_DIR"))
    args = parser.parse_args()
    if not args.dir:
        parser.error("--dir or SMTP_SINK_DIR is required")
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(Sink(args.dir), hostname="127.0.0.1", port=args.port)
    controller.start()
    print(f"smtp_sink: listening on 127.0.0.1:{args.port}, writing to {args.dir}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
