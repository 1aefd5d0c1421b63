"""Framing for the gateway <-> shard socket: length-prefixed pickled batches of message tuples.

Both ends are non-blocking Twisted connections over a socketpair (never a blocking write from the
reactor: PERFORMANCE.md). Each frame carries a whole batch, so one hop costs one wake-up for many
commands. Messages are plain tuples (cheap to pickle):

gateway -> shard
    ("C", req_id, now_ms, line)        a trading command line, txn included
    ("O", req_id, now_ms, user)        open an account (sign-up by LOGIN)
    ("S", req_id)                      send your STATS
shard -> gateway
    ("R", [req_id, ...], lines)        replies: `lines` is their JSON lines joined by "\n" (UTF-8),
                                       in the order of the req_ids
    ("E", user, event_json)            a pushed event for the user's sessions
    ("S", req_id, stats_dict)          STATS
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import Protocol
from twisted.internet.tcp import Connection
from twisted.python.failure import Failure

_HEADER = struct.Struct("!I")
MAX_FRAME = 256 * 1024 * 1024


def write_now(transport: Any, data: bytes) -> None:
    """Write `data`, sending it at once when the transport has nothing queued.

    Twisted's `write` only queues and waits for the socket to poll writable (two epoll changes
    and one more reactor event per write); a plain connected socket with an empty queue takes
    the bytes straight away. Whatever it does not take (or a TLS transport, or a closing one)
    goes through `transport.write` as usual, so order and flow control are kept.
    """
    # Only Twisted's own socket connections (a protocol wrapper, such as TLS over memory BIOs,
    # would hand out its inner socket through attribute delegation).
    if (isinstance(transport, Connection) and transport.TLS is False and transport.connected
            and not transport.disconnecting and not transport._tempDataBuffer
            and transport.offset == len(transport.dataBuffer)):
        try:
            sent = transport.socket.send(data)
        except OSError:  # full, or broken: the reactor finds out which on its own
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def encode_frame(messages: list[tuple[Any, ...]]) -> bytes:
    """One frame holding a batch of messages."""
    body = pickle.dumps(messages, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


class FrameProtocol(Protocol):
    """Reads frames, hands each batch to `on_batch`; `send` coalesces writes per reactor turn."""

    def __init__(self, on_batch: Callable[[list[tuple[Any, ...]]], None],
                 on_lost: Callable[[Failure], None] | None = None,
                 call_later: Callable[..., Any] | None = None) -> None:
        self._on_batch = on_batch
        self._on_lost = on_lost
        self._call_later = call_later
        self._buffer = bytearray()
        self._outbox: list[tuple[Any, ...]] = []
        self._flush_scheduled = False
        self.connected_ = False

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's naming)
        self.connected_ = True

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        buf = self._buffer
        buf += data
        offset = 0
        size = len(buf)
        batches = []
        while size - offset >= 4:
            (length,) = _HEADER.unpack_from(buf, offset)
            if length > MAX_FRAME:
                self.transport.loseConnection()
                return
            end = offset + 4 + length
            if end > size:
                break
            batches.append(pickle.loads(bytes(buf[offset + 4 : end])))
            offset = end
        if offset:
            del buf[:offset]
        for batch in batches:
            self._on_batch(batch)

    def send(self, message: tuple[Any, ...]) -> None:
        """Queue a message; all messages queued in one reactor turn go out as one frame."""
        self._outbox.append(message)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            if self._call_later is None:
                from twisted.internet import reactor

                self._call_later = reactor.callLater
            self._call_later(0, self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self._outbox and self.transport is not None and self.connected_:
            batch, self._outbox = self._outbox, []
            write_now(self.transport, encode_frame(batch))

    def connectionLost(self, reason: Failure = None) -> None:  # noqa: N802
        self.connected_ = False
        if self._on_lost is not None:
            self._on_lost(reason)
