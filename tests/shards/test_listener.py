"""A remote shard's listener over real TCP on 127.0.0.1: the handshake, then one gateway's
frames; refusals with their reasons, and nothing executed before the handshake."""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable

import orjson
import pytest
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from server.shard_client import ShardClient
from server.shard_pool import connect_to_shard
from server.shards import handshake as hs
from server.shards.channel import MAX_FRAME, Frame, encode_frame
from server.shards.listener import ShardListener

SECRET = b"0123456789abcdef0123456789abcdef"


def spin_until(done: Callable[[], bool], turns: int = 500) -> None:
    """Run the real reactor a turn at a time until `done()` (at most `turns` turns)."""
    for _ in range(turns):
        if done():
            return
        reactor.iterate(0.01)
    raise AssertionError("the condition did not come true within the reactor turns allowed")


#: Every Peer made by a test, closed by the `shard` fixture.
PEERS: list[Peer] = []


class Peer:
    """A gateway (or probe) side of one link, recording what happened to it."""

    def __init__(self, port: int, *, secret: bytes = SECRET, index: int = 1, count: int = 2,
                 role: str = "gateway") -> None:
        self.ready_with: int | None = None
        self.batches: list[list] = []
        self.lost = False
        self.channel = ShardClient(index, count, secret, role, on_ready=self._ready,
                                   on_batch=self.batches.append, on_lost=self._lost,
                                   call_later=reactor.callLater)
        connect_to_shard(reactor, ("127.0.0.1", port), self.channel, self._lost)
        PEERS.append(self)

    def _ready(self, max_txn: int) -> None:
        self.ready_with = max_txn

    def _lost(self, reason: object) -> None:
        self.lost = True

    def messages(self) -> list[list]:
        return [m for batch in self.batches for m in batch]


@pytest.fixture
def shard():
    """Shard 1 of 2 listening on a free port; `executed` holds every batch given to its
    service."""
    executed: list[list] = []
    listener = ShardListener(1, 2, SECRET, reactor, lambda: 4711, MAX_FRAME)
    listener.on_batch = executed.append
    port = reactor.listenTCP(0, listener, interface="127.0.0.1")
    listener.executed = executed
    listener.port_number = port.getHost().port
    yield listener
    peers = PEERS[:]
    PEERS.clear()
    for peer in peers:
        if peer.channel.transport is not None and not peer.lost:
            peer.channel.transport.abortConnection()
    port.stopListening()
    spin_until(lambda: listener.gateway is None and all(p.lost for p in peers))


def test_a_gateway_with_the_secret_gets_the_shards_highest_txn_and_its_frames_run(shard):
    gateway = Peer(shard.port_number)
    spin_until(lambda: gateway.ready_with is not None)
    assert gateway.ready_with == 4711
    gateway.channel.send((Frame.COMMAND, 7, 0, "[1] ADD,alice,1.00"))
    spin_until(lambda: shard.executed)
    assert shard.executed == [[["C", 7, 0, "[1] ADD,alice,1.00"]]]
    shard.send((Frame.REPLIES, [7], '{"ok":true}'))
    spin_until(lambda: gateway.messages())
    assert gateway.messages() == [["R", [7], '{"ok":true}']]


def test_a_wrong_secret_is_refused_with_the_reason_and_logged(shard, caplog):
    caplog.set_level(logging.INFO, logger="daytrade.security")
    gateway = Peer(shard.port_number, secret=b"a guessed secret of 32 bytes....")
    spin_until(lambda: gateway.lost)
    assert gateway.ready_with is None
    assert gateway.channel.refusal == "the shard refused: wrong cluster secret"
    assert "refused 127.0.0.1" in caplog.text and "wrong cluster secret" in caplog.text
    assert shard.gateway is None and shard.executed == []


def test_frames_sent_without_a_handshake_are_refused_and_never_run(shard, caplog):
    caplog.set_level(logging.INFO, logger="daytrade.security")
    with socket.create_connection(("127.0.0.1", shard.port_number), timeout=5) as raw:
        raw.sendall(encode_frame([(Frame.COMMAND, 1, 0, "[1] ADD,alice,1.00")]))
        received = b""
        for _ in range(500):  # until the shard closes the link
            reactor.iterate(0.01)
            raw.setblocking(False)
            try:
                chunk = raw.recv(65536)
            except BlockingIOError:
                continue
            if not chunk:
                break
            received += chunk
        else:
            raise AssertionError(f"the shard never closed the link; it sent {received!r}")
    (hello_length,) = struct.unpack_from("!I", received)
    hello = orjson.loads(received[4:4 + hello_length])
    refusal = orjson.loads(received[8 + hello_length:])
    assert hello[0][0] == "H" and refusal == [["X", "a 'C' message before the handshake"]]
    assert shard.executed == []
    assert "a 'C' message before the handshake" in caplog.text


def test_a_gateway_for_another_shard_index_is_refused(shard):
    gateway = Peer(shard.port_number, index=0)
    spin_until(lambda: gateway.lost)
    assert gateway.ready_with is None
    assert "shard 1 of 2, this side for shard 0 of 2" in gateway.channel.refusal
    assert shard.executed == []


def test_a_gateway_with_another_shard_count_is_refused(shard):
    gateway = Peer(shard.port_number, count=3)
    spin_until(lambda: gateway.lost)
    assert "shard 1 of 2, this side for shard 1 of 3" in gateway.channel.refusal


def test_a_probe_is_answered_pings_and_leaves_the_gateway_in_place(shard):
    gateway = Peer(shard.port_number)
    spin_until(lambda: gateway.ready_with is not None)
    probe = Peer(shard.port_number, role="probe")
    spin_until(lambda: probe.ready_with is not None)
    probe.channel.send((Frame.PING, 5))
    spin_until(lambda: probe.messages())
    assert probe.messages() == [["Q", 5]]
    assert shard.gateway is not None and shard.gateway.role == "gateway"
    assert not gateway.lost


def test_a_probe_may_not_send_commands(shard):
    probe = Peer(shard.port_number, role="probe")
    spin_until(lambda: probe.ready_with is not None)
    probe.channel.send((Frame.COMMAND, 1, 0, "[1] ADD,alice,1.00"))
    spin_until(lambda: probe.lost)
    assert shard.executed == []


def test_a_new_gateway_takes_over_from_the_one_before(shard):
    first = Peer(shard.port_number)
    spin_until(lambda: first.ready_with is not None)
    second = Peer(shard.port_number)
    spin_until(lambda: second.ready_with is not None and first.lost)
    shard.send((Frame.EVENT, "alice", "{}"))
    spin_until(lambda: second.messages())
    assert second.messages() == [["E", "alice", "{}"]]
    assert first.messages() == []


def test_a_peer_that_does_not_complete_the_handshake_in_time_is_closed():
    clock = Clock()
    listener = ShardListener(1, 2, SECRET, clock, lambda: 0, MAX_FRAME)
    link = listener.buildProtocol(None)
    transport = StringTransport()
    link.makeConnection(transport)
    clock.advance(hs.HANDSHAKE_TIMEOUT - 0.1)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnecting


def test_a_big_frame_before_the_handshake_is_refused_before_it_is_buffered():
    clock = Clock()
    listener = ShardListener(1, 2, SECRET, clock, lambda: 0, MAX_FRAME)
    link = listener.buildProtocol(None)
    transport = StringTransport()
    link.makeConnection(transport)
    link.dataReceived(struct.pack("!I", hs.MAX_HANDSHAKE_FRAME + 1))
    assert transport.disconnecting
