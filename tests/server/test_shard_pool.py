"""The gateway's pool of remote shards on a fake reactor clock: back-off with jitter, what
commands get while a shard is unreachable, pings and STATS, txns learnt in the handshake."""

from __future__ import annotations

import json
import random

import orjson
import pytest
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from server import shard_pool as sp
from server.shard_pool import RemoteShards, ShardPool
from server.shards import handshake as hs
from server.shards.channel import Frame, encode_frame

SECRET = b"0123456789abcdef0123456789abcdef"
ADDRESSES = [("10.0.0.1", 4100), ("10.0.0.2", 4100)]


class Sink:
    """Collects what the pool answers one client with."""

    def __init__(self) -> None:
        self.answers: list[tuple[dict, str | None]] = []

    def __call__(self, lines: list, code: str | None) -> None:
        self.answers += [(json.loads(line) if isinstance(line, bytes) else line, code)
                         for line in lines]


class Cluster:
    """A pool of two remote shards on a fake reactor; the test plays the shards."""

    def __init__(self, shard_wait: float = 3.0, dump_dir: str | None = None) -> None:
        self.reactor = MemoryReactorClock()
        self.seen: list[int] = []
        self.pool = ShardPool([], self.reactor, on_event=lambda user, ev: None,
                              reserve_txns=lambda n: 1000, seen_txn=self.seen.append,
                              remote=RemoteShards(ADDRESSES, SECRET, shard_wait,
                                                  dump_dir=dump_dir),
                              rng=random.Random(7))
        self.transports: dict[int, StringTransport] = {}
        self.pool.start()

    def attempts(self, index: int) -> list:
        host, port = ADDRESSES[index]
        return [c for c in self.reactor.tcpClients if (c[0], c[1]) == (host, port)]

    def refuse(self, index: int) -> None:
        """The latest connection attempt to shard `index` is refused."""
        factory = self.attempts(index)[-1][2]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))

    def accept(self, index: int, max_txn: int = 0) -> StringTransport:
        """The latest attempt to shard `index` connects and completes the handshake."""
        channel = self.attempts(index)[-1][2].buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        challenge = hs.challenge()
        channel.dataReceived(encode_frame([hs.hello(index, 2, challenge)]))
        self.reactor.advance(0)
        [claim] = self.frames(transport)
        accepted = hs.check_claim(claim, SECRET, index, 2, challenge)
        channel.dataReceived(encode_frame([hs.welcome(SECRET, index, 2, challenge, accepted,
                                                      max_txn)]))
        self.transports[index] = transport
        return transport

    def frames(self, transport: StringTransport) -> list[list]:
        """The messages written to `transport` since the last call."""
        data, messages = transport.value(), []
        transport.clear()
        while data:
            length = int.from_bytes(data[:4], "big")
            messages += orjson.loads(data[4:4 + length])
            data = data[4 + length:]
        return messages

    def lose(self, index: int) -> None:
        channel = self.attempts(index)[-1][2].channel
        channel.connectionLost(Failure(ConnectionDone()))


def test_reconnection_waits_grow_exponentially_with_jitter_up_to_the_cap():
    cluster = Cluster()
    waits = []
    for _ in range(8):
        cluster.refuse(0)
        [call] = [c for c in cluster.reactor.getDelayedCalls() if c.func == cluster.pool._connect]
        waits.append(call.getTime() - cluster.reactor.seconds())
        cluster.reactor.advance(waits[-1])
    for attempt, wait in enumerate(waits):
        ceiling = min(sp.BACKOFF_MAX, sp.BACKOFF_FIRST * sp.BACKOFF_FACTOR ** attempt)
        assert ceiling * (1 - sp.JITTER) <= wait <= ceiling
    assert len(cluster.attempts(0)) == 9
    assert len(set(waits)) == len(waits)  # jittered, not in step


def test_the_gateway_lets_clients_in_once_every_shard_told_its_highest_txn():
    cluster = Cluster()
    ready = cluster.pool.ready()
    cluster.accept(0, max_txn=120)
    assert not ready.called
    cluster.accept(1, max_txn=95)
    assert ready.called
    assert cluster.seen == [120, 95]


def test_commands_for_an_unreachable_shard_are_answered_shard_unavailable_after_the_wait():
    cluster = Cluster(shard_wait=3.0)
    cluster.accept(0)
    cluster.refuse(1)
    sink = Sink()
    cluster.pool.submit(1, Frame.COMMAND, (0, "[5] ADD,bob,1.00"), sink, 5, "ADD")
    cluster.reactor.advance(2.9)
    assert sink.answers == []
    cluster.reactor.advance(0.1)
    [(reply, code)] = sink.answers
    assert code == "shard_unavailable"
    assert reply["error"]["code"] == "shard_unavailable" and reply["txn"] == 5
    assert "10.0.0.2:4100" in reply["error"]["message"]


def test_other_shards_users_see_no_change_while_one_is_unreachable():
    cluster = Cluster()
    transport = cluster.accept(0)
    cluster.refuse(1)
    cluster.frames(transport)
    sink = Sink()
    cluster.pool.submit(0, Frame.COMMAND, (0, "[5] ADD,ann,1.00"), sink, 5, "ADD")
    cluster.reactor.advance(0)
    [sent] = [m for m in cluster.frames(transport) if m[0] == "C"]
    cluster.attempts(0)[-1][2].channel.dataReceived(
        encode_frame([[Frame.REPLIES, [sent[1]], '{"txn":5,"ok":true}']]))
    assert sink.answers == [({"txn": 5, "ok": True}, None)]


def test_commands_queued_for_a_shard_that_comes_back_in_time_are_sent_to_it():
    cluster = Cluster()
    cluster.refuse(1)
    sink = Sink()
    cluster.pool.submit(1, Frame.COMMAND, (0, "[5] ADD,bob,1.00"), sink, 5, "ADD")
    cluster.reactor.advance(1.0)  # the reconnection is due
    transport = cluster.accept(1)
    cluster.reactor.advance(0)
    assert [m[3] for m in cluster.frames(transport) if m[0] == "C"] == ["[5] ADD,bob,1.00"]
    cluster.reactor.advance(5.0)
    assert sink.answers == []  # no shard_unavailable for what was sent


def test_in_flight_commands_of_a_lost_link_are_answered_internal_and_the_link_redialled():
    cluster = Cluster()
    cluster.accept(1)
    sink = Sink()
    cluster.pool.submit(1, Frame.COMMAND, (0, "[5] ADD,bob,1.00"), sink, 5, "ADD")
    cluster.reactor.advance(0)
    cluster.lose(1)
    [(reply, code)] = sink.answers
    assert code == "internal" and reply["error"]["code"] == "internal" and reply["txn"] == 5
    cluster.reactor.advance(sp.BACKOFF_FIRST)
    assert len(cluster.attempts(1)) == 2


def test_stats_show_each_shards_address_state_and_round_trip_time():
    cluster = Cluster()
    transport = cluster.accept(0)
    cluster.refuse(1)
    cluster.reactor.advance(0)
    [ping] = [m for m in cluster.frames(transport) if m[0] == "P"]
    cluster.reactor.advance(0.004)
    cluster.attempts(0)[-1][2].channel.dataReceived(encode_frame([[Frame.PONG, ping[1]]]))
    result = cluster.pool.stats()
    cluster.reactor.advance(0)
    [stats_request] = [m for m in cluster.frames(transport) if m[0] == "S"]
    cluster.attempts(0)[-1][2].channel.dataReceived(
        encode_frame([[Frame.STATS, stats_request[1], {"shard": 0, "commands": 3}]]))
    shards = result.result
    assert shards[0] == {"shard": 0, "commands": 3, "restarts": 0, "state": "connected",
                         "address": "10.0.0.1:4100", "rtt_ms": pytest.approx(4.0, abs=0.01)}
    assert shards[1] == {"shard": 1, "down": True, "restarts": 0, "state": "down",
                         "address": "10.0.0.2:4100", "rtt_ms": None}


def test_a_link_without_a_pong_for_the_ping_timeout_is_taken_for_cut():
    cluster = Cluster()
    transport = cluster.accept(0)
    cluster.reactor.advance(sp.PING_TIMEOUT - sp.PING_INTERVAL)
    assert not transport.disconnecting
    cluster.reactor.advance(sp.PING_INTERVAL)
    assert transport.disconnecting


def test_a_shard_asking_for_txns_while_the_link_is_down_is_not_answered_later():
    cluster = Cluster()
    cluster.refuse(0)
    cluster.pool._send(0, (Frame.TXNS, 1, 1000))  # the answer to a link that went away
    assert cluster.pool._shards[0].waiting == []


def test_an_all_users_dumplog_fails_with_the_reason_when_a_shard_is_lost_while_it_is_read(
        tmp_path):
    cluster = Cluster(dump_dir=str(tmp_path))
    transports = [cluster.accept(0), cluster.accept(1)]
    sink = Sink()
    cluster.pool.submit(0, Frame.COMMAND, (0, "[9] DUMPLOG,all.xml"), sink, 9, "DUMPLOG")
    cluster.reactor.advance(0)
    [command] = [m for m in cluster.frames(transports[0]) if m[0] == "C"]
    # Shard 0 cannot read the other journal: the gateway is to write the file.
    cluster.attempts(0)[-1][2].channel.dataReceived(
        encode_frame([[Frame.DUMP, command[1], 9, "all.xml"]]))
    cluster.reactor.advance(0)
    assert [m[0] for m in cluster.frames(transports[1]) if m[0] == "J"] == ["J"]
    cluster.lose(1)
    [(reply, code)] = sink.answers
    assert code == "internal" and reply["txn"] == 9
    assert "shard 1 was lost while its journal was read" in reply["error"]["message"]
    assert list(tmp_path.iterdir()) == []  # the pulled records are gone
