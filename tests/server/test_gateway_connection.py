"""The Twisted adapter of the session: idle timeout on a fake clock, actions performed on the
transport (twisted.internet.testing.StringTransport), registrations for pushed events."""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from server.gateway import ClientConnection, Gateway, GatewaySettings, TxnAllocator

TOKEN = "operator-token-" + "x" * 30
IDLE_S = 60.0


def connect(clock: Clock | None = None) -> tuple[Gateway, ClientConnection, StringTransport]:
    # No shards and no directory: these tests send only what the gateway answers itself.
    gateway = Gateway(None, None, TOKEN, TxnAllocator(),  # type: ignore[arg-type]
                      GatewaySettings(idle_timeout=IDLE_S), reactor=clock or Clock())
    conn = gateway.buildProtocol(("127.0.0.1", 40_000))
    transport = StringTransport()
    conn.makeConnection(transport)
    return gateway, conn, transport


def written(transport: StringTransport) -> list[dict]:
    return [json.loads(line) for line in transport.value().splitlines()]


def test_an_idle_connection_is_closed_after_the_idle_timeout():
    clock = Clock()
    _, _, transport = connect(clock)
    clock.advance(IDLE_S - 1)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting


def test_input_restarts_the_idle_timeout():
    clock = Clock()
    _, conn, transport = connect(clock)
    clock.advance(IDLE_S - 1)
    conn.dataReceived(b"PING\n")
    clock.advance(IDLE_S - 1)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting


def test_a_closed_connection_leaves_no_timer_behind():
    clock = Clock()
    _, conn, _ = connect(clock)
    conn.connectionLost(None)
    assert clock.getDelayedCalls() == []


def test_replies_are_written_and_quit_closes():
    _, conn, transport = connect()
    conn.dataReceived(b"PING\nQUIT\n")
    assert [r["cmd"] for r in written(transport)] == ["PING", "QUIT"]
    assert transport.disconnecting


def test_a_client_that_does_not_read_is_not_read():
    _, conn, transport = connect()
    conn.pauseProducing()  # what the transport does when its write buffer is full
    assert transport.producerState == "paused"
    conn.resumeProducing()
    assert transport.producerState == "producing"


def test_nothing_is_written_after_the_connection_closes_itself():
    gateway, conn, transport = connect()
    conn.dataReceived(f"AUTH,{TOKEN}\nWATCH,alice\n".encode() + b"garbage\n" * 10)
    before = transport.value()
    gateway.push_event("alice", '{"event":"trigger_fired"}')
    assert transport.disconnecting and transport.value() == before


def test_a_lost_connection_gets_no_more_pushed_events():
    gateway, conn, transport = connect()
    conn.dataReceived(f"AUTH,{TOKEN}\nWATCH,alice\n".encode())
    assert gateway.watchers == {"alice": {conn}}
    conn.connectionLost(None)
    assert gateway.watchers == {} and gateway.sessions == {}


class FullTransport(StringTransport):
    """A transport whose buffer is full after every write, as for a client that stopped reading:
    it pauses its producer, as Twisted's do."""

    def write(self, data: bytes) -> None:
        super().write(data)
        self.producer.pauseProducing()


class HeldShards:
    """Two shards that keep every request until `answer_all` (one connection's)."""

    count = 2

    def __init__(self) -> None:
        self.sinks: list = []

    def submit(self, index, kind, payload, sink, txn, cmd) -> bool:
        self.sinks.append(sink)
        return True

    def answer_all(self) -> None:
        """One frame answering everything: a connection gets all its lines in one call."""
        sinks, self.sinks = self.sinks, []
        sinks[0]([b'{"ok":true}'] * len(sinks), None)


def test_replies_that_fill_the_clients_buffer_keep_reading_paused():
    shards = HeldShards()
    gateway = Gateway(shards, None, TOKEN, TxnAllocator(),  # type: ignore[arg-type]
                      GatewaySettings(max_in_flight=4), reactor=Clock())
    conn = gateway.buildProtocol(("127.0.0.1", 40_000))
    transport = StringTransport()
    conn.makeConnection(transport)
    conn.dataReceived(f"AUTH,{TOKEN}\n".encode())
    conn.transport = full = FullTransport()
    full.registerProducer(conn, True)
    conn.dataReceived(b"QUOTE,bob,ABC\n" * 4)
    assert full.producerState == "paused"  # four in flight
    shards.answer_all()  # in flight drops to 0, but the client reads nothing
    assert full.producerState == "paused"
