"""The gateway's (or a probe's) end of a TCP link to a remote shard: the handshake, then frames.

Nothing but the handshake goes out before the shard has proved it knows the cluster secret too
(server/shards/handshake.py); a refusal or a bad proof closes the link with the reason kept in
`refusal`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.python.failure import Failure

from server.shards import handshake as hs
from server.shards.channel import MAX_FRAME, FrameProtocol

log = logging.getLogger("daytrade.gateway")


class ShardClient(FrameProtocol):
    """Connects as `role` ("gateway" or "probe") to shard `index` of `count`."""

    def __init__(self, index: int, count: int, secret: bytes, role: str, *,
                 on_ready: Callable[[int], None],
                 on_batch: Callable[[list[list[Any]]], None],
                 on_lost: Callable[[Failure], None],
                 call_later: Callable[..., Any]) -> None:
        super().__init__(self._on_hello, on_lost, call_later, max_frame=hs.MAX_HANDSHAKE_FRAME)
        self.index = index
        self.count = count
        self._secret = secret
        self._role = role
        self._on_ready = on_ready
        self._deliver = on_batch
        self._challenge = hs.challenge()
        self._shard_challenge = ""
        self.ready = False
        self.refusal: str | None = None

    def _on_hello(self, batch: list[list[Any]]) -> None:
        try:
            claim, self._shard_challenge = hs.answer_hello(
                batch[0], self._secret, self.index, self.count, self._role, self._challenge)
        except hs.HandshakeRefused as exc:
            self._fail(str(exc))
            return
        self.on_batch = self._on_welcome
        self.send(claim)
        self.flush()

    def _on_welcome(self, batch: list[list[Any]]) -> None:
        try:
            max_txn = hs.check_welcome(batch[0], self._secret, self.index, self.count,
                                       self._shard_challenge, self._challenge)
        except hs.HandshakeRefused as exc:
            self._fail(str(exc))
            return
        self.max_frame = MAX_FRAME
        self.on_batch = self._deliver
        self.ready = True
        self._on_ready(max_txn)
        if len(batch) > 1:  # what the shard sent right after its welcome
            self._deliver(batch[1:])

    def _fail(self, reason: str) -> None:
        self.refusal = reason
        self.refuse(reason)
