"""TwistedRedis against a real redis-server: replies, pipelining, scripts, timeouts, failures."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import redis
from twisted.internet.defer import gatherResults
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import TestCase

from server.quotes.redis_client import (
    RedisReplyError,
    RedisUnavailable,
    Script,
    TwistedRedis,
    encode_command,
)
from server.quotes.redis_server import EmbeddedRedis
from tests.quotes.quote_servers import FakeClockReactor


def test_commands_are_encoded_as_resp_arrays_of_bulk_strings():
    assert encode_command(("SET", "k", b"v\r\n", 12)) == (
        b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$2\r\n12\r\n"
    )


def test_unsupported_argument_types_are_refused():
    with pytest.raises(TypeError):
        encode_command(("SET", "k", None))


def test_urls_give_host_port_db_and_password():
    client = TwistedRedis.from_url("redis://:s%40cret@127.0.0.2:6390/3")
    assert (client.host, client.port) == ("127.0.0.2", 6390)
    assert (client.db, client.password) == (3, "s@cret")
    with pytest.raises(ValueError):
        TwistedRedis.from_url("http://127.0.0.1:6379")


@pytest.mark.usefixtures("trial_redis")
class TwistedRedisTest(TestCase):
    def client(self, url: str | None = None, **kwargs) -> TwistedRedis:
        client = TwistedRedis.from_url(url or self.redis_server.url, **kwargs)
        self.addCleanup(client.close)
        return client

    async def test_set_then_get_round_trips(self):
        client = self.client()
        assert await client.execute("SET", "trc:a", "hello") == b"OK"
        assert await client.execute("GET", "trc:a") == b"hello"
        assert await client.execute("GET", "trc:missing") is None
        assert client.connected

    async def test_a_burst_of_commands_is_answered_in_order(self):
        client = self.client()
        await client.execute("DEL", "trc:n")
        replies = await gatherResults([client.execute("INCR", "trc:n") for _ in range(500)])
        assert replies == list(range(1, 501))

    async def test_an_error_reply_fails_only_its_command(self):
        client = self.client()
        await client.execute("SET", "trc:s", "text")
        bad = client.execute("INCR", "trc:s")
        good = client.execute("GET", "trc:s")
        with pytest.raises(RedisReplyError):
            await bad
        assert await good == b"text"

    async def test_scripts_run_and_are_loaded_when_redis_lacks_them(self):
        client = self.client()
        script = Script("return {KEYS[1], ARGV[1], 7}")
        await client.execute("SCRIPT", "FLUSH")
        assert await client.run_script(script, ["k"], ["v"]) == [b"k", b"v", 7]
        assert await client.run_script(script, ["k2"], ["v2"]) == [b"k2", b"v2", 7]

    async def test_the_url_database_is_selected(self):
        db1 = self.client(self.redis_server.url.removesuffix("/0") + "/1")
        db0 = self.client()
        await db1.execute("SET", "trc:db", "one")
        assert await db0.execute("GET", "trc:db") is None
        assert await db1.execute("GET", "trc:db") == b"one"

    async def test_a_refused_connection_fails_with_redis_unavailable(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        client = TwistedRedis("127.0.0.1", port)
        with pytest.raises(RedisUnavailable):
            await client.execute("PING")
        await client.close()

    async def test_a_closed_client_refuses_commands(self):
        client = self.client()
        assert await client.execute("PING") == b"PONG"
        await client.close()
        with pytest.raises(RedisUnavailable):
            await client.execute("PING")


@pytest.mark.usefixtures("trial_tmp_path")
class TwistedRedisFailureTest(TestCase):
    """Tests that freeze or stop their own redis-server."""

    def setUp(self) -> None:
        self.server = EmbeddedRedis(self.tmp_path / "redis")
        self.addCleanup(self.server.stop)

    async def test_a_frozen_server_fails_every_pending_command_at_its_timeout(self):
        fake = FakeClockReactor()  # a real connection; the timeouts on a clock the test moves
        client = TwistedRedis.from_url(self.server.url, timeout=0.2, reactor=fake)
        self.addCleanup(client.close)
        assert await client.execute("PING") == b"PONG"
        self.server.pause()
        pending = [client.execute("PING") for _ in range(3)]
        fake.advance(0.2)  # the deadline: the watchdog lets the reactor poll once more
        assert not any(d.called for d in pending)
        fake.advance(0.01)
        for d in pending:
            with pytest.raises(RedisUnavailable):
                await d
        self.server.resume()
        assert await client.execute("PING") == b"PONG"  # reconnects

    async def test_a_stopped_server_fails_pending_commands(self):
        client = TwistedRedis.from_url(self.server.url, timeout=5.0)
        self.addCleanup(client.close)
        assert await client.execute("PING") == b"PONG"
        self.server.stop()
        with pytest.raises(RedisUnavailable):
            await client.execute("PING")
        assert not client.connected

    async def test_a_password_is_sent_first(self):
        sync = redis.Redis.from_url(self.server.url)
        sync.config_set("requirepass", "pw-123")
        sync.close()
        client = TwistedRedis.from_url(self.server.url.replace("//", "//:pw-123@"))
        self.addCleanup(client.close)
        assert await client.execute("PING") == b"PONG"
        wrong = TwistedRedis.from_url(self.server.url.replace("//", "//:nope@"))
        self.addCleanup(wrong.close)
        with pytest.raises(RedisUnavailable):
            await wrong.execute("PING")


def connected_client(reactor: MemoryReactorClock) -> tuple[TwistedRedis, StringTransport, Any]:
    """A client on a simulated clock whose connection is a StringTransport."""
    client = TwistedRedis("127.0.0.1", 6379, reactor=reactor, timeout=0.2)
    d = client.execute("PING")
    factory = reactor.tcpClients[0][2]
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    transport.setTcpNoDelay = lambda enabled: None  # a TCP transport's, which the client sets
    protocol.makeConnection(transport)
    return client, protocol, d


def test_a_reply_read_in_the_turn_after_the_deadline_is_not_a_timeout():
    # A reactor busy past the deadline runs the watchdog before it reads the waiting reply.
    reactor = MemoryReactorClock()
    client, protocol, d = connected_client(reactor)
    reactor.advance(0.3)
    protocol.dataReceived(b"+PONG\r\n")  # what the next poll reads
    reactor.advance(0.01)
    assert d.result == b"PONG"
    assert client.connected


def test_no_reply_after_one_more_turn_is_a_timeout():
    reactor = MemoryReactorClock()
    client, protocol, d = connected_client(reactor)
    reactor.advance(0.3)
    reactor.advance(0.01)
    failures = []
    d.addErrback(failures.append)
    assert failures and failures[0].check(RedisUnavailable)
    assert not client.connected
