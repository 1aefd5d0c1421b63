"""The ceiling: a bare Twisted line server that answers every line at once with a short JSON reply.

Replaying the same plan against it with the same client and connection settings measures what
the client, the loopback and one Twisted process can do with no work behind them; daytrade's
throughput is reported as a fraction of that. Run on its own: `python -m bench.calibrate`.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

READY = re.compile(r"calibration server listening on ([\w.:-]+):(\d+)")


def reply_line(line: bytes) -> bytes:
    """The answer to one request line: ok, with its txn and command name, and an empty result."""
    text = line.decode("utf-8", "replace").rstrip("\r")
    txn = None
    if text.startswith("["):
        end = text.find("]")
        if end > 1 and text[1:end].isdigit():
            txn = int(text[1:end])
            text = text[end + 1:].lstrip(" ")
    elif text.startswith("$ "):
        text = text[2:]
    name = text.partition(",")[0].strip().upper()
    return json.dumps({"txn": txn, "cmd": name, "ok": True, "result": {}},
                      separators=(",", ":")).encode() + b"\n"


def serve(host: str, port: int) -> None:
    """Run the line server until killed."""
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import LineOnlyReceiver

    class Echo(LineOnlyReceiver):
        delimiter = b"\n"
        MAX_LENGTH = 64 * 1024

        def lineReceived(self, line: bytes) -> None:
            self.transport.write(reply_line(line))

    listening = reactor.listenTCP(port, Factory.forProtocol(Echo), interface=host, backlog=1024)
    address = listening.getHost()
    print(f"calibration server listening on {address.host}:{address.port}", flush=True)
    reactor.run()


class CalibrationServer:
    """The line server in a subprocess (`python -m bench.calibrate --port 0`)."""

    def __init__(self, workdir: Path, start_timeout: float = 30.0) -> None:
        self.workdir = workdir
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.host = "127.0.0.1"
        self.port = 0

    def start(self) -> CalibrationServer:
        out_path = self.workdir / "calibration.out"
        with open(out_path, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.calibrate", "--port", "0"], stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while True:
            text = out_path.read_text(errors="replace")
            m = READY.search(text)
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the calibration server did not start: {text[-2000:]}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> CalibrationServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.calibrate", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
