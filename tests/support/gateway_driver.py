"""Feeds workload lines through one gateway connection with a fake transport and fake shards.

A measuring tool for the gateway's per-line path (run it under callgrind), not a test:
`PYTHONHASHSEED=0 valgrind --tool=callgrind python -m tests.support.gateway_driver WORKLOAD N`,
once with N lines and once with 0, gives the instructions the N lines cost. The connection acts
as the operator; every routed line is answered with one canned reply per chunk, as the shard
pool answers a connection's lines of one frame with one call.
"""

from __future__ import annotations

import sys
from itertools import islice
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from server.gateway import Gateway, TxnAllocator

TOKEN = "t" * 43
LINES_PER_CHUNK = 50
REPLY = b'{"txn":1,"cmd":"ADD","ok":true,"result":{}}'


class CountingTransport(StringTransport):
    """Keeps the number of bytes written instead of the bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def stopReading(self) -> None:  # noqa: N802
        self.pauseProducing()

    def startReading(self) -> None:  # noqa: N802
        self.resumeProducing()


class AnsweringPool:
    """Two shards that take every request and answer when told to."""

    count = 2
    recoveries: list[float] = []

    def __init__(self) -> None:
        self.asked: list[Any] = []

    def submit(self, index: int, kind: str, payload: tuple[Any, ...], sink: Any,
               txn: int | None, cmd: str) -> bool:
        self.asked.append(sink)
        return True

    def answer_all(self) -> None:
        if self.asked:
            sink = self.asked[0]
            lines = [REPLY] * len(self.asked)
            self.asked.clear()
            sink(lines, None)


def drive(path: str, count: int) -> int:
    """Feed the first `count` lines of `path`; returns the bytes written back."""
    pool = AnsweringPool()
    gateway = Gateway(pool, None, TOKEN, TxnAllocator(), reactor=Clock())  # type: ignore[arg-type]
    conn = gateway.buildProtocol(("127.0.0.1", 5000))
    transport = CountingTransport()
    conn.makeConnection(transport)
    conn.dataReceived(f"AUTH,{TOKEN}\n".encode())
    with open(path, "rb") as f:
        lines = list(islice(f, count))
    for start in range(0, len(lines), LINES_PER_CHUNK):
        conn.dataReceived(b"".join(lines[start:start + LINES_PER_CHUNK]))
        pool.answer_all()
    return transport.written


if __name__ == "__main__":
    written = drive(sys.argv[1], int(sys.argv[2]))
    print(f"{written} bytes written")
