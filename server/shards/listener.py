"""A remote shard's TCP side: the handshake with each peer, then one gateway's frames at a time.

A peer executes nothing before it has proved it knows the cluster secret (server/shards/
handshake.py). A gateway that completes the handshake takes over from the one before it (which
may be a link the network cut without a word): its link is closed, so there is one gateway at a
time. A probe may only ping, and never displaces the gateway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from server.shards import handshake as hs
from server.shards.channel import Frame, FrameProtocol

log = logging.getLogger("daytrade.shard")
security = logging.getLogger("daytrade.security")


class ShardLink(FrameProtocol):
    """One TCP peer of the shard: a gateway or a probe once its handshake succeeds."""

    def __init__(self, listener: ShardListener) -> None:
        super().__init__(self._on_claim, self._lost, listener.reactor.callLater,
                         max_frame=hs.MAX_HANDSHAKE_FRAME)
        self.listener = listener
        self.challenge = hs.challenge()
        self.role: str | None = None
        self.peer = "?"
        self._timeout: Any = None

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's naming)
        super().connectionMade()
        peer = self.transport.getPeer()
        self.peer = f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '')}"
        self._timeout = self.listener.reactor.callLater(hs.HANDSHAKE_TIMEOUT, self._refuse,
                                                        "no handshake in time")
        listener = self.listener
        self.send(hs.hello(listener.index, listener.count, self.challenge))

    def _on_claim(self, batch: list[list[Any]]) -> None:
        listener = self.listener
        try:
            if len(batch) != 1:
                raise hs.HandshakeRefused("frames before the handshake")
            claim = hs.check_claim(batch[0], listener.secret, listener.index, listener.count,
                                   self.challenge)
        except hs.HandshakeRefused as exc:
            self._refuse(str(exc))
            return
        self._cancel_timeout()
        self.role = claim.role
        self.max_frame = listener.max_frame
        self.send(hs.welcome(listener.secret, listener.index, listener.count, self.challenge,
                             claim, listener.max_txn()))
        security.info("shard %d: %s %s connected", listener.index, claim.role, self.peer)
        if claim.role == "gateway":
            self.on_batch = listener.on_batch
            listener.attach(self)
        else:
            self.on_batch = self._probe_batch

    def _probe_batch(self, batch: list[list[Any]]) -> None:
        for msg in batch:
            if msg[0] != Frame.PING or len(msg) != 2:
                self._refuse("a probe may only ping")
                return
            self.send([Frame.PONG, msg[1]])

    def _refuse(self, reason: str) -> None:
        self._cancel_timeout()
        security.warning("shard %d refused %s: %s", self.listener.index, self.peer, reason)
        if self.transport is not None and self.connected_:
            self._outbox.clear()
            self.send(hs.refused(reason))
            self.flush()
        self.refuse(reason)

    def _cancel_timeout(self) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None

    def _lost(self, reason: Failure) -> None:
        self._cancel_timeout()
        self.listener.detach(self)


class ShardListener(Factory):
    """Accepts peers for shard `index` of `count`; the service's messages go to the gateway."""

    def __init__(self, index: int, count: int, secret: bytes, reactor: Any,
                 max_txn: Callable[[], int], max_frame: int) -> None:
        self.index = index
        self.count = count
        self.secret = secret
        self.reactor = reactor
        self.max_txn = max_txn
        self.max_frame = max_frame
        self.gateway: ShardLink | None = None
        self.on_batch: Callable[[list[list[Any]]], None] = lambda batch: None
        self.on_attach: Callable[[], None] = lambda: None

    def buildProtocol(self, addr: Any) -> ShardLink:  # noqa: N802
        link = ShardLink(self)
        link.factory = self
        return link

    def send(self, message: Any) -> None:
        """A message of the service for the gateway (dropped while none is connected: its
        in-flight commands were answered `internal` by the gateway, which retries)."""
        if self.gateway is not None:
            self.gateway.send(message)

    def attach(self, link: ShardLink) -> None:
        old, self.gateway = self.gateway, link
        if old is not None:
            log.warning("shard %d: gateway %s replaces the link from %s", self.index, link.peer,
                        old.peer)
            old.transport.abortConnection()
        self.on_attach()

    def detach(self, link: ShardLink) -> None:
        if self.gateway is link:
            self.gateway = None
            log.warning("shard %d: gateway %s gone", self.index, link.peer)
