"""QuoteCache with a real simulator and a real Redis: hits, expiry, coalescing, shards, failures."""

from __future__ import annotations

import itertools
import socket
import time

import pytest
import redis
from twisted.internet.defer import gatherResults
from twisted.trial.unittest import TestCase

from protocol.quote import PriceQuote
from server.quotes.cache import QuoteCache, decode_quote, encode_quote, renewal_due
from server.quotes.errors import QuoteUnavailable
from server.quotes.legacy_client import LegacyQuoteClient
from server.quotes.redis_client import TwistedRedis
from server.quotes.redis_server import EmbeddedRedis
from server.quotes.simulator import Latency
from tests.quotes.quote_servers import FakeClockReactor, listen_simulator, wait_until

_prefixes = itertools.count()


def now_ms() -> int:
    return int(time.time() * 1000)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_stored_quote_decodes_to_itself_not_fresh():
    quote = PriceQuote("ABC", 12345, 1_700_000_000_000, "k3y+/==", "bob", fresh=True)
    assert decode_quote("ABC", encode_quote(quote).encode()) == quote.cached()


@pytest.mark.parametrize(
    "raw",
    [b"", b"garbage", b"0,1700000000000,bob,key", b"12,abc,bob,key", b"12,1,bo b,key",
     b"12,1,bob,", b"12,1,bob,k\x01", b"\xff", b"-5,1,bob,key"],
)  # fmt: skip
def test_unreadable_stored_values_decode_to_none(raw):
    assert decode_quote("ABC", raw) is None


def test_a_quote_with_more_than_the_renewal_window_left_is_not_due():
    quote = PriceQuote("ABC", 1_000, 0, "k", "bob")
    assert not renewal_due(quote, 44_999, 15_000)


def test_a_quote_with_less_than_a_third_of_the_window_left_is_due():
    quote = PriceQuote("ABC", 1_000, 0, "k", "bob")
    assert renewal_due(quote, 55_001, 15_000)


def test_quotes_fetched_together_come_due_at_different_times():
    quotes = [PriceQuote(f"S{i:02d}", 1_000, 0, "k", "bob") for i in range(50)]
    first_due = [next(t for t in range(45_000, 60_000, 100) if renewal_due(q, t, 15_000))
                 for q in quotes]
    assert min(first_due) < 50_000 and max(first_due) > 52_000


@pytest.mark.usefixtures("trial_redis", "trial_tmp_path")
class QuoteCacheTest(TestCase):
    def setUp(self) -> None:
        self.prefix = f"test{next(_prefixes)}-{time.time_ns()}:quote:"

    def start_simulator(self, ms: int = 0, **config):
        return listen_simulator(self, latency=Latency("fixed", ms), **config)

    def make_cache(self, port: int, redis_url: str | None = "session", **kwargs) -> QuoteCache:
        client = LegacyQuoteClient("127.0.0.1", port, timeout=2.0, hedge_after=1.0)
        if redis_url == "session":
            redis_url = self.redis_server.url
        redis_client = None if redis_url is None else TwistedRedis.from_url(redis_url, timeout=0.2)
        cache = QuoteCache(client, redis_client, key_prefix=self.prefix, **kwargs)
        self.addCleanup(cache.close)
        return cache

    def redis_sync(self, url: str | None = None) -> redis.Redis:
        client = redis.Redis.from_url(url or self.redis_server.url)
        self.addCleanup(client.close)
        return client

    async def test_a_second_get_within_60_s_is_served_without_a_fetch(self):
        simulator, port = self.start_simulator()
        cache = self.make_cache(port)
        now = now_ms()
        first = await cache.get("ABC", "bob", now)
        second = await cache.get("ABC", "amy", now + 30_000)
        assert first.fresh and not second.fresh
        assert second == first.cached()
        assert simulator.requests_served == 1
        assert (cache.fetches, cache.hits_local) == (1, 1)

    async def test_peek_returns_only_a_usable_local_quote(self):
        _, port = self.start_simulator()
        cache = self.make_cache(port)
        now = now_ms()
        assert cache.peek("ABC", now) is None
        fetched = await cache.get("ABC", "bob", now)
        assert cache.peek("ABC", now) == fetched.cached()
        assert cache.peek("ABC", fetched.quote_time + 60_000) is None
        assert cache.hits_local == 1

    async def test_an_expired_quote_is_fetched_again(self):
        simulator, port = self.start_simulator()
        cache = self.make_cache(port)
        first = await cache.get("ABC", "bob", now_ms())
        later = await cache.get("ABC", "bob", first.quote_time + 60_000)
        assert later.fresh
        assert simulator.requests_served == 2
        assert cache.fetches == 2

    async def test_concurrent_gets_coalesce_to_one_fetch_and_only_one_is_fresh(self):
        simulator, port = self.start_simulator(ms=100)
        cache = self.make_cache(port)
        now = now_ms()
        quotes = await gatherResults([cache.get("ABC", f"u{i}", now) for i in range(5)])
        assert [q.fresh for q in quotes] == [True, False, False, False, False]
        assert len({q.cached() for q in quotes}) == 1
        assert simulator.requests_served == 1
        assert (cache.fetches, cache.coalesced) == (1, 4)

    async def test_two_shards_sharing_redis_make_one_fetch_between_them(self):
        simulator, port = self.start_simulator(ms=150)
        shard_a, shard_b = self.make_cache(port), self.make_cache(port)
        now = now_ms()
        a, b = await gatherResults([shard_a.get("XYZ", "bob", now), shard_b.get("XYZ", "amy", now)])
        assert a.cached() == b.cached()
        assert [a.fresh, b.fresh].count(True) == 1
        assert simulator.requests_served == 1
        assert shard_a.fetches + shard_b.fetches == 1
        assert shard_a.hits_redis + shard_b.hits_redis == 1
        assert shard_a.lock_waits + shard_b.lock_waits == 1

    async def test_another_shard_later_gets_the_quote_from_redis_then_locally(self):
        simulator, port = self.start_simulator()
        shard_a, shard_b = self.make_cache(port), self.make_cache(port)
        now = now_ms()
        fetched = await shard_a.get("IBM", "bob", now)
        await wait_until(lambda: self.redis_sync().exists(self.prefix + "IBM") == 1)
        from_redis = await shard_b.get("IBM", "amy", now)
        from_local = await shard_b.get("IBM", "amy", now)
        assert from_redis == from_local == fetched.cached()
        assert simulator.requests_served == 1
        assert (shard_b.fetches, shard_b.hits_redis, shard_b.hits_local) == (0, 1, 1)

    async def test_quotes_expire_from_redis_with_their_60_s_life(self):
        _, port = self.start_simulator()
        cache = self.make_cache(port)
        quote = await cache.get("IBM", "bob", now_ms())
        sync = self.redis_sync()
        await wait_until(lambda: sync.exists(self.prefix + "IBM") == 1)
        ttl = sync.pttl(self.prefix + "IBM")
        assert 0 < ttl <= quote.quote_time + 60_000 - now_ms() + 1_000
        assert not sync.exists(self.prefix + "IBM:lock")  # released after the fetch

    async def test_an_unreadable_value_in_redis_is_replaced_by_a_fetch(self):
        simulator, port = self.start_simulator()
        self.redis_sync().set(self.prefix + "ABC", "garbage", px=60_000)
        cache = self.make_cache(port)
        quote = await cache.get("ABC", "bob", now_ms())
        assert quote.fresh
        assert simulator.requests_served == 1

    async def test_a_failed_fetch_is_quote_unavailable_and_frees_the_lock(self):
        cache = self.make_cache(_closed_port())
        with pytest.raises(QuoteUnavailable):
            await cache.get("ABC", "bob", now_ms())
        assert (cache.fetches, cache.failures) == (1, 1)
        sync = self.redis_sync()
        await wait_until(lambda: sync.exists(self.prefix + "ABC:lock") == 0)
        assert sync.exists(self.prefix + "ABC") == 0

    async def test_a_lock_holder_that_never_finishes_is_waited_for_only_lock_wait(self):
        simulator, port = self.start_simulator()
        self.redis_sync().set(self.prefix + "ABC:lock", "a-dead-shard", px=60_000)
        fake = FakeClockReactor()  # the cache's polls wait on it; Redis and the fetch are real
        cache = self.make_cache(port, lock_wait=0.3, reactor=fake)
        d = cache.get("ABC", "bob", now_ms())
        for _ in range(100):  # the polls back off from 5 to 50 ms: about ten in 0.3 s
            await wait_until(lambda: fake.getDelayedCalls() or cache.fetches)
            if cache.fetches:
                break
            assert simulator.requests_served == 0  # still waiting for the holder
            (poll,) = fake.getDelayedCalls()
            fake.advance(poll.getTime() - fake.seconds())
        else:
            raise AssertionError("the cache never stopped waiting for the lock holder")
        assert fake.seconds() == pytest.approx(0.3)  # it fetched itself once lock_wait was over
        quote = await d
        assert quote.fresh
        assert (cache.lock_waits, cache.fetches, simulator.requests_served) == (1, 1, 1)

    async def test_without_redis_the_cache_still_caches_locally(self):
        simulator, port = self.start_simulator()
        cache = self.make_cache(port, redis_url=None)
        now = now_ms()
        assert (await cache.get("ABC", "bob", now)).fresh
        assert not (await cache.get("ABC", "bob", now)).fresh
        assert simulator.requests_served == 1
        assert cache.stats()["redis_up"] is False

    async def test_get_many_uses_local_then_one_mget_then_fetches_per_symbol_owner(self):
        simulator, port = self.start_simulator()
        shard_a, shard_b = self.make_cache(port), self.make_cache(port)
        now = now_ms()
        await shard_a.get("AAA", "x", now)  # lands in Redis
        await shard_b.get("BBB", "y", now)  # lands in shard_b's dict (and Redis)
        await wait_until(lambda: self.redis_sync().exists(self.prefix + "AAA") == 1)
        owners = {"AAA": "u1", "BBB": "u2", "CCC": "u3"}
        quotes = await shard_b.get_many(["AAA", "BBB", "CCC", "BBB"], owners, now)
        assert sorted(quotes) == ["AAA", "BBB", "CCC"]
        assert not quotes["AAA"].fresh and not quotes["BBB"].fresh
        assert quotes["CCC"].fresh and quotes["CCC"].user == "u3"
        assert simulator.requests_served == 3
        assert (shard_b.hits_local, shard_b.hits_redis, shard_b.fetches) == (1, 1, 2)

    async def test_get_many_leaves_out_symbols_without_a_quote(self):
        now = now_ms()
        stored = PriceQuote("AAA", 500, now, "key", "u1")
        self.redis_sync().set(self.prefix + "AAA", encode_quote(stored), px=60_000)
        cache = self.make_cache(_closed_port())
        quotes = await cache.get_many(["AAA", "ZZZ"], "u1", now)
        assert quotes == {"AAA": stored}
        assert cache.failures == 1

    async def test_a_renewal_fetches_a_newer_quote_although_the_old_one_is_still_in_redis(self):
        simulator, port = self.start_simulator()
        cache = self.make_cache(port)
        now = now_ms()
        old = await cache.get("ABC", "bob", now)
        # Usable 70 s from now: the quote in Redis (fetched just now) cannot be.
        renewed = await cache.renew("ABC", "amy", now, 70_000)
        assert renewed.fresh and renewed.user == "amy"
        assert simulator.requests_served == 2
        assert cache.peek("ABC", now) == renewed.cached() != old.cached()
        assert (cache.renewals, cache.fetches) == (1, 2)

    async def test_a_renewal_takes_a_quote_another_shard_renewed_from_redis(self):
        simulator, port = self.start_simulator()
        shard_a, shard_b = self.make_cache(port), self.make_cache(port)
        now = now_ms()
        await shard_a.get("IBM", "bob", now)
        renewed = await shard_a.renew("IBM", "bob", now, 70_000)
        await wait_until(lambda: (self.redis_sync().get(self.prefix + "IBM") or b"").decode()
                         == encode_quote(renewed))
        from_redis = await shard_b.renew("IBM", "amy", now, 50_000)
        assert from_redis == renewed.cached()
        assert simulator.requests_served == 2
        assert (shard_b.fetches, shard_b.hits_redis) == (0, 1)

    async def test_no_renewal_starts_while_a_lookup_of_the_symbol_is_in_flight(self):
        simulator, port = self.start_simulator(ms=100)
        cache = self.make_cache(port)
        now = now_ms()
        lookup = cache.get("ABC", "bob", now)
        assert cache.renew("ABC", "amy", now, 70_000) is None
        await lookup
        assert simulator.requests_served == 1

    async def test_stats_report_every_counter(self):
        _, port = self.start_simulator()
        cache = self.make_cache(port)
        await cache.get("ABC", "bob", now_ms())
        stats = cache.stats()
        durations = {k: stats.pop(k) for k in list(stats) if k.startswith("client_fetch_")}
        assert sum(durations.values()) == 1  # how long it took is the machine's business
        assert stats == {
            "hits_local": 0,
            "hits_redis": 0,
            "fetches": 1,
            "failures": 0,
            "coalesced": 0,
            "renewals": 0,
            "lock_waits": 0,
            "redis_errors": 0,
            "redis_up": True,
            "requests_sent": 1,
            "client_hedges": 0,
            "client_hedges_won": 0,
            "client_hedges_refused": 0,
        }


@pytest.mark.usefixtures("trial_tmp_path")
class QuoteCacheRedisFailureTest(TestCase):
    """Redis trouble costs only speed: each test runs its own redis-server to stop or freeze."""

    def setUp(self) -> None:
        self.redis = EmbeddedRedis(self.tmp_path / "redis")
        self.addCleanup(self.redis.stop)
        self.simulator, self.port = listen_simulator(self)

    def make_cache(self, **kwargs) -> QuoteCache:
        client = LegacyQuoteClient("127.0.0.1", self.port, timeout=2.0, hedge_after=1.0)
        cache = QuoteCache(client, TwistedRedis.from_url(self.redis.url, timeout=0.2), **kwargs)
        self.addCleanup(cache.close)
        return cache

    async def test_redis_stopped_mid_run_still_gives_quotes_from_the_quote_server(self):
        shard_a, shard_b = self.make_cache(), self.make_cache()
        now = now_ms()
        await shard_a.get("ABC", "bob", now)
        self.redis.stop()
        other = await shard_a.get("XYZ", "bob", now)
        again = await shard_b.get("ABC", "amy", now)
        assert other.fresh and again.fresh
        assert self.simulator.requests_served == 3
        assert shard_a.stats()["redis_up"] is False
        assert shard_a.redis_errors >= 1
        # once open, the breaker skips Redis: a third symbol costs no Redis timeout
        errors = shard_a.redis_errors
        await shard_a.get("IBM", "bob", now)
        assert shard_a.redis_errors == errors

    async def test_a_frozen_redis_costs_only_its_timeout(self):
        fake = FakeClockReactor()  # Redis's timeout and the breaker on it; the I/O is real
        client = LegacyQuoteClient("127.0.0.1", self.port, timeout=2.0, hedge_after=1.0)
        cache = QuoteCache(client, TwistedRedis.from_url(self.redis.url, timeout=0.2,
                                                         reactor=fake), reactor=fake)
        self.addCleanup(cache.close)
        await cache.get("ABC", "bob", now_ms())  # connected
        self.redis.pause()
        d = cache.get("XYZ", "bob", now_ms())  # its Redis lookup is out
        fake.advance(0.2)
        assert (cache.fetches, d.called) == (1, False)  # nothing but ABC's fetch yet
        fake.advance(0.01)  # Redis's timeout is over: straight to the quote server
        quote = await d
        assert quote.fresh and cache.fetches == 2
        assert cache.stats()["redis_up"] is False

    async def test_redis_is_used_again_once_it_recovers(self):
        shard_a, shard_b = self.make_cache(retry_after=0.2), self.make_cache()
        self.redis.pause()
        await shard_a.get("ABC", "bob", now_ms())
        assert shard_a.stats()["redis_up"] is False
        self.redis.resume()
        await wait_until(lambda: shard_a.stats()["redis_up"])
        await shard_a.get("XYZ", "bob", now_ms())
        sync = redis.Redis.from_url(self.redis.url)
        self.addCleanup(sync.close)
        await wait_until(lambda: sync.exists("daytrade:quote:XYZ") == 1)
        quote = await shard_b.get("XYZ", "amy", now_ms())
        assert not quote.fresh
        assert (shard_b.hits_redis, shard_b.fetches) == (1, 0)
