"""Framing for the gateway <-> shard link: length-prefixed JSON batches of messages.

The same frames go over a local socketpair and over TCP to a shard on another host. They are
JSON (orjson), never pickle: a peer that could inject bytes into a pickled stream would run code
in the gateway or the shard. Each frame carries a whole batch, so one hop costs one wake-up for
many commands. A message is a JSON array whose first item is its kind (`Frame`):

gateway -> shard
    [C, req_id, now_ms, line]          a trading command line, txn included
    [O, req_id, now_ms, user]          open an account (sign-up by LOGIN)
    [A, req_id, user]                  does the account exist (answered with S)
    [S, req_id]                        send your STATS
    [T, token, first_txn]              the txns a shard asked for (trigger firings)
    [P, token]                         ping (answered with Q)
    [J, token, after_seq, limit]       journal records after `after_seq` (a remote DUMPLOG)
shard -> gateway
    [R, [req_id, ...], lines]          replies: `lines` is their JSON lines joined by "\\n", in
                                       the order of the req_ids
    [E, user, event_json]              a pushed event for the user's sessions
    [S, req_id, dict]                  STATS, or an A answer
    [T, token, count]                  ask for `count` fresh txns
    [Q, token]                         pong
    [D, req_id, txn, filename]         the all-users DUMPLOG `req_id` is the gateway's to write
                                       (this shard cannot read the other shards' journals)
    [J, token, max_txn, [[seq, base64 data], ...]]   journal records (none left: empty)
The handshake before any of these on a TCP link (server/shards/handshake.py) uses H, G, W, X.

JSON costs more than pickle did, mostly the reply lines escaped inside a JSON string: callgrind
(PYTHONHASHSEED=0) of 2,000 batches of 20 commands and their replies through encode and decode
at both ends, 12,349 -> 14,481 instructions a command. The bench's server CPU per command on
100user (fixed 1 ms quotes, 2 shards), alternated with the pickle framing three times each on a
shared machine: 116.1 / 138.4 / 107.3 us before, 121.6 / 114.3 / 114.4 us after, within noise.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import orjson
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

_HEADER = struct.Struct("!I")
MAX_FRAME = 256 * 1024 * 1024


class Frame(StrEnum):
    """The kind of a message: its first item."""

    COMMAND = "C"
    OPEN = "O"
    EXISTS = "A"
    STATS = "S"
    TXNS = "T"
    REPLIES = "R"
    EVENT = "E"
    PING = "P"
    PONG = "Q"
    DUMP = "D"  # shard -> gateway: write this all-users DUMPLOG from every shard's journal
    RECORDS = "J"  # gateway -> shard: journal records after a seq; shard -> gateway: them
    HELLO = "H"  # shard -> gateway: version, K, N, the shard's challenge
    CLAIM = "G"  # gateway -> shard: version, K, N, role, the gateway's challenge, its proof
    WELCOME = "W"  # shard -> gateway: the shard's proof, its highest journaled txn
    REFUSED = "X"  # either way: why the link is refused, before it closes


class FrameError(ValueError):
    """Bytes on the link that are not a frame of messages (the peer is not one of ours)."""


def pack_records(rows: list[tuple[int, bytes]]) -> list[list[Any]]:
    """Journal records (seq, stored bytes) as JSON can carry them (base64)."""
    return [[seq, base64.b64encode(data).decode()] for seq, data in rows]


def unpack_records(rows: list[list[Any]]) -> list[tuple[int, bytes]]:
    return [(seq, base64.b64decode(data)) for seq, data in rows]


def encode_frame(messages: list[Any]) -> bytes:
    """One frame holding a batch of messages."""
    body = orjson.dumps(messages)
    return _HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> list[list[Any]]:
    """The batch of messages in a frame's body; FrameError when it is not one."""
    try:
        batch = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"a frame that is not JSON: {exc}") from None
    if type(batch) is not list or not all(type(m) is list and m and type(m[0]) is str
                                          for m in batch):
        raise FrameError("a frame that is not a list of messages")
    return batch


class FrameProtocol(Protocol):
    """Reads frames, hands each batch to `on_batch`; `send` coalesces writes per reactor turn.

    `max_frame` bounds what a peer may make this side buffer (small before a handshake)."""

    def __init__(self, on_batch: Callable[[list[list[Any]]], None],
                 on_lost: Callable[[Failure], None] | None = None,
                 call_later: Callable[..., Any] | None = None,
                 max_frame: int = MAX_FRAME) -> None:
        self.on_batch = on_batch  # may be swapped (after a handshake)
        self._on_lost = on_lost
        self._call_later = call_later
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._outbox: list[Any] = []
        self._flush_scheduled = False
        self.connected_ = False

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's naming)
        self.connected_ = True

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        buf = self._buffer
        buf += data
        offset = 0
        size = len(buf)
        while size - offset >= 4 and self.connected_:
            (length,) = _HEADER.unpack_from(buf, offset)
            if length > self.max_frame:
                self.refuse(f"a frame of {length} bytes is over the limit of {self.max_frame}")
                return
            end = offset + 4 + length
            if end > size:
                break
            try:
                batch = decode_body(bytes(buf[offset + 4 : end]))
            except FrameError as exc:
                self.refuse(str(exc))
                return
            offset = end
            # One batch at a time: handling one may change how the next is read (a handshake).
            self.on_batch(batch)
        if offset:
            del buf[:offset]

    def refuse(self, reason: str) -> None:
        """Stop reading this peer: drop what it sent and close the link."""
        self.connected_ = False
        self._buffer.clear()
        if self.transport is not None:
            self.transport.loseConnection()

    def send(self, message: list[Any] | tuple[Any, ...]) -> None:
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
            # Twisted's public write (queued until the socket polls writable): sending straight
            # to the socket read private attributes of tcp.Connection and saved ~4 us per frame,
            # ~0.2 us a command at ~20 commands a frame (2e504ce): under 0.2% of a command's
            # CPU, short of issue 16's 2% bar for a trick.
            self.transport.write(encode_frame(batch))

    def connectionLost(self, reason: Failure = None) -> None:  # noqa: N802
        self.connected_ = False
        if self._on_lost is not None:
            self._on_lost(reason)
