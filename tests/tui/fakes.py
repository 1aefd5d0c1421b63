"""Test doubles for the dashboard: a frozen clock, and a client that answers from recorded replies.

RecordedClient stands in for protocol.client.DaytradeClient behind the Connection (the same
`ClientLike` surface), so screenshots render real server replies without a live server.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from protocol.client import ConnectionLost
from protocol.replies import PushedEvent, Reply, decode

RECORDING = Path(__file__).with_name("recorded") / "alice.json"


class FrozenClock:
    """Wall time stands at `now_ms` (move it with `advance`); the monotonic timer too."""

    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now

    def monotonic(self) -> float:
        return self.now / 1000

    def advance(self, ms: int) -> None:
        self.now += ms


def load_recording(path: Path = RECORDING) -> dict[str, Any]:
    return json.loads(path.read_text())


class RecordedClient:
    """Answers each request line with the reply recorded for it (an `internal` error if none)."""

    def __init__(self, replies: dict[str, Any], clock: FrozenClock,
                 on_event: Any = None) -> None:
        self.replies = replies
        self.clock = clock
        self.on_event = on_event
        self.sent: list[str] = []
        #: Lines whose replies never come (until the connection closes under them).
        self.hold: set[str] = set()
        #: The server's clock runs this far ahead of ours (PING's pong shows it).
        self.pong_offset_ms = 0
        self._held: list[asyncio.Future[Reply]] = []
        self._closed = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def send(self, line: str) -> asyncio.Future[Reply]:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        if self.closed:
            raise ConnectionLost("the connection is closed")
        self.sent.append(line)
        if line in self.hold:
            self._held.append(future)
        elif line == "PING":
            future.set_result(Reply(None, "PING", True,
                                    {"pong": self.clock.now_ms() + self.pong_offset_ms}))
        elif line in self.replies:
            future.set_result(decode(json.dumps(self.replies[line])))  # type: ignore[arg-type]
        else:
            future.set_result(decode(json.dumps({
                "txn": None, "cmd": line.split(",")[0], "ok": False,
                "error": {"code": "internal", "message": f"no recorded reply for {line!r}"}})))
        return future

    def push(self, name: str, **data: Any) -> None:
        """Deliver a pushed event as the server would."""
        self.on_event(PushedEvent(name, data))

    async def close(self) -> None:
        """Close, failing whatever is held, as a dropped connection does."""
        self._closed.set()
        for future in self._held:
            if not future.done():
                future.set_exception(ConnectionLost("connection lost: reset by peer"))

    async def wait_closed(self) -> None:
        await self._closed.wait()


class RecordedServer:
    """A connector handing out RecordedClients; `clients` lists them, newest last."""

    def __init__(self, replies: dict[str, Any], clock: FrozenClock) -> None:
        self.replies = replies
        self.clock = clock
        self.clients: list[RecordedClient] = []
        #: While > 0, connecting fails with ConnectionRefusedError (and counts down).
        self.refuse = 0

    async def __call__(self, host: str, port: int, on_event: Any) -> RecordedClient:
        if self.refuse:
            self.refuse -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        client = RecordedClient(self.replies, self.clock, on_event)
        self.clients.append(client)
        return client
