"""The quote cache of one shard: an in-process dict in front of Redis, which all shards share.

A quote serves every user's command while `now < quote_time + 60 s`. Lookup order: the local dict,
then Redis, then the legacy quote server. At most one fetch per symbol is in flight: within the
process, concurrent callers share one Deferred (only the first gets the quote with fresh=True, since
that one command audits the quoteServer hit; the rest get `.cached()`); across shards, a Redis lock
(`SET NX PX`, taken atomically with the read by a Lua script) elects one fetcher while the others
poll Redis for its result, and fetch themselves if it takes longer than `lock_wait`.

A shard may renew a quote that is still in use shortly before it runs out (`renew`,
`renewal_due`), so that its users' commands do not wait for the fetch when it does: the quotes
first fetched together at a start would otherwise run out together 60 s later, and every user
whose next command needs one waited behind that wave of fetches.

Redis only buys speed: every call has a timeout (the client's), any failure makes the cache go
straight to the quote server, and Redis is skipped for a back-off that doubles from `retry_after`
up to `retry_max` seconds while it keeps failing (a circuit breaker).

Redis client: `TwistedRedis` (redis_client.py), a pipelined RESP connection on the shard's own
reactor, parsed by hiredis: no thread hand-off per call and no asyncio reactor required.
"""

from __future__ import annotations

import itertools
import os
import re
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from protocol.quote import QUOTE_LIFETIME_MS, PriceQuote
from server.quotes.legacy_client import LegacyQuoteClient
from server.quotes.redis_client import RedisError, Script, TwistedRedis

# KEYS: value, lock. ARGV: lock token, lock ttl ms, the oldest quote time (ms) wanted. Returns
# {1, value} (a quote that new) | {2, ''} (lock taken) | {0, ''} (someone else holds the lock).
# An older value counts as none: a renewal takes the lock although the old quote is still there.
_GET_OR_LOCK = Script(
    """
local v = redis.call('GET', KEYS[1])
if v then
  local t = tonumber(string.match(v, '^[^,]*,([0-9]+),'))
  if t and t >= tonumber(ARGV[3]) then return {1, v} end
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, ''} end
return {0, ''}
"""
)

# KEYS: value, lock. ARGV: encoded quote, its ttl ms (0: store nothing), lock token ('' : none).
_STORE_AND_UNLOCK = Script(
    """
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""
)

_STORED = re.compile(r"([1-9][0-9]{0,14}),([0-9]{1,16}),([A-Za-z0-9_]{1,32}),([^,\x00-\x1f]+)")


def encode_quote(quote: PriceQuote) -> str:
    """A quote as stored in Redis (its symbol is in the key): `cents,quote_time,user,cryptokey`."""
    return f"{quote.price},{quote.quote_time},{quote.user},{quote.cryptokey}"


def renewal_due(quote: PriceQuote, now: int, ahead_ms: int) -> bool:
    """True once `quote` is close enough to running out to be renewed in the background.

    Each quote gets its own point between a third of `ahead_ms` and all of it before its end
    (hashed from symbol and quote time): quotes fetched in the same second, as at a start, are
    renewed spread over several seconds, not all at once 60 s later.
    """
    left = quote.quote_time + QUOTE_LIFETIME_MS - now
    if left >= ahead_ms:
        return False
    spread = zlib.crc32(f"{quote.symbol}@{quote.quote_time}".encode()) % 1000
    return left < ahead_ms * (333 + spread * 667 // 1000) // 1000


def decode_quote(symbol: str, raw: bytes | str) -> PriceQuote | None:
    """The quote stored as `raw`, or None when it is not in `encode_quote`'s form."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        return None
    m = _STORED.fullmatch(text)
    if m is None:
        return None
    price, quote_time, user, key = m.groups()
    return PriceQuote(symbol, int(price), int(quote_time), key, user)


class QuoteCache:
    """Quotes for one shard: local dict, then shared Redis, then the legacy quote server.

    `redis` may be None (no Redis at all), a TwistedRedis, or a redis:// URL; the cache owns it and
    `close` closes it.
    """

    def __init__(
        self,
        client: LegacyQuoteClient,
        redis: TwistedRedis | str | None = None,
        *,
        reactor: IReactorTCP | None = None,
        key_prefix: str = "daytrade:quote:",
        lock_wait: float | None = None,
        poll_interval: float = 0.005,
        poll_max: float = 0.05,
        retry_after: float = 0.5,
        retry_max: float = 10.0,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor  # type: ignore[assignment]
        if isinstance(redis, str):
            redis = TwistedRedis.from_url(redis, reactor=reactor)
        self._client = client
        self._redis = redis
        self._reactor = reactor
        self._clock: IReactorTime = reactor  # type: ignore[assignment]
        self.key_prefix = key_prefix
        # By default a waiter outlasts the holder's own timeout: the holder answers or gives up
        # by then, where a shorter wait made a second shard fetch the same symbol whenever the
        # quote server was slow (10 fetches over the bound in a 146 s final_2019 run).
        client_timeout = getattr(client, "timeout", 5.0)
        self.lock_wait = client_timeout + 0.5 if lock_wait is None else lock_wait
        self.poll_interval = poll_interval
        self.poll_max = poll_max
        self.retry_after = retry_after
        self.retry_max = retry_max
        # The lock outlives a legitimate fetch, so only a dead holder's lock runs out.
        self._lock_ttl_ms = int((client_timeout + 1.0) * 1000)
        self._local: dict[str, PriceQuote] = {}
        self._inflight: dict[str, list[Deferred[PriceQuote]]] = {}
        self._tokens = itertools.count()
        self._token_base = f"{os.getpid()}-{id(self):x}"
        self._redis_retry_at = 0.0
        self._backoff = retry_after
        self.hits_local = 0
        self.hits_redis = 0
        self.fetches = 0
        self.failures = 0
        self.coalesced = 0
        self.renewals = 0
        self.lock_waits = 0
        self.redis_errors = 0

    # -- lookups ------------------------------------------------------------------------------

    def peek(self, symbol: str, now: int) -> PriceQuote | None:
        """The locally cached quote of `symbol` if usable at `now`, without a Deferred (the hot
        path of a shard); None means: call `get`."""
        quote = self._local.get(symbol)
        if quote is not None and quote.usable_at(now):
            self.hits_local += 1
            return quote
        return None

    def get(self, symbol: str, user: str, now: int) -> Deferred[PriceQuote]:
        """A quote of `symbol` usable at `now` (ms); a fetch asks in the name of `user`.

        Fails with QuoteUnavailable when it is not cached and the quote server gives none.
        """
        quote = self._local.get(symbol)
        if quote is not None and quote.usable_at(now):
            self.hits_local += 1
            return succeed(quote)
        return self._join(symbol, user, now)

    def renew(self, symbol: str, user: str, now: int, keep_ms: int) -> Deferred[PriceQuote] | None:
        """Renew `symbol`'s quote before it runs out, in `user`'s name: with one usable until at
        least `now + keep_ms`, from Redis when another shard renewed it already, else fetched (then
        `fresh`: the caller audits the hit). None when a lookup of the symbol is in flight."""
        if symbol in self._inflight:
            return None
        self.renewals += 1
        d: Deferred[PriceQuote] = Deferred()
        self._inflight[symbol] = [d]
        Deferred.fromCoroutine(self._load(symbol, user, now, now + keep_ms)).addBoth(
            self._land, symbol)
        return d

    def get_many(
        self, symbols: Iterable[str], user: str | Mapping[str, str], now: int
    ) -> Deferred[dict[str, PriceQuote]]:
        """Quotes of several symbols at once (one MGET for those not cached locally), for the
        trigger sweeper. `user` is one user or a map symbol -> user to fetch in the name of.
        Symbols without a quote are left out of the result."""
        return Deferred.fromCoroutine(self._get_many(list(dict.fromkeys(symbols)), user, now))

    def stats(self) -> dict[str, int | bool]:
        """Counters: hits_local, hits_redis, fetches (quote-server fetches started), failures
        (fetches that gave no quote), coalesced (callers that joined a lookup in flight),
        renewals (background renewals started, fetched or found in Redis),
        lock_waits (lookups that waited for another shard's fetch), redis_errors, redis_up,
        requests_sent (connections to the quote server, hedges included), and the quote client's
        other counters (hedges, fetch durations: LegacyQuoteClient.counters) prefixed `client_`."""
        counters = getattr(self._client, "counters", None)
        client = {} if counters is None else {
            f"client_{name}": n for name, n in counters().items()
            if name not in ("fetches", "failures", "requests_sent")}
        return {
            "hits_local": self.hits_local,
            "hits_redis": self.hits_redis,
            "fetches": self.fetches,
            "failures": self.failures,
            "coalesced": self.coalesced,
            "renewals": self.renewals,
            "lock_waits": self.lock_waits,
            "redis_errors": self.redis_errors,
            "redis_up": self._redis_ready(),
            "requests_sent": getattr(self._client, "requests_sent", 0),
            **client,
        }

    def close(self) -> Deferred[None]:
        """Close the Redis connection (lookups still work, without Redis)."""
        redis, self._redis = self._redis, None
        return succeed(None) if redis is None else redis.close()

    # -- internals ----------------------------------------------------------------------------

    def _join(self, symbol: str, user: str, now: int) -> Deferred[PriceQuote]:
        d: Deferred[PriceQuote] = Deferred()
        waiters = self._inflight.get(symbol)
        if waiters is not None:
            self.coalesced += 1
            waiters.append(d)
            return d
        self._inflight[symbol] = [d]
        Deferred.fromCoroutine(self._load(symbol, user, now)).addBoth(self._land, symbol)
        return d

    def _land(self, outcome: PriceQuote | Failure, symbol: str) -> None:
        waiters = self._inflight.pop(symbol)
        if isinstance(outcome, Failure):
            for d in waiters:
                d.errback(outcome)
            return
        self._local[symbol] = outcome.cached()
        waiters[0].callback(outcome)
        for d in waiters[1:]:
            d.callback(outcome.cached())

    async def _load(self, symbol: str, user: str, now: int,
                    usable_until: int | None = None) -> PriceQuote:
        """A quote usable at `usable_until` (default: `now`): Redis's, or fetched under the lock."""
        until = now if usable_until is None else usable_until
        oldest = until - QUOTE_LIFETIME_MS + 1
        value_key, lock_key = self.key_prefix + symbol, self.key_prefix + symbol + ":lock"
        lock_token = ""
        if self._redis_ready():
            token = f"{self._token_base}-{next(self._tokens)}"
            deadline = self._clock.seconds() + self.lock_wait
            delay = self.poll_interval
            waited = False
            while self._redis_ready():
                try:
                    status, raw = await self._redis_call(
                        _GET_OR_LOCK, [value_key, lock_key], [token, self._lock_ttl_ms, oldest]
                    )
                except RedisError:
                    break
                if status == 1:
                    quote = decode_quote(symbol, raw)
                    if quote is not None and quote.usable_at(until):
                        self.hits_redis += 1
                        return quote
                    break  # unreadable: fetch a new one
                if status == 2:
                    lock_token = token
                    break
                remaining = deadline - self._clock.seconds()
                if remaining <= 0:
                    break  # the lock holder is too slow: fetch ourselves
                if not waited:
                    waited = True
                    self.lock_waits += 1
                await deferLater(self._clock, min(delay, remaining), lambda: None)
                delay = min(delay * 2, self.poll_max)
        self.fetches += 1
        try:
            quote = await self._client.fetch(symbol, user)
        except Exception:
            self.failures += 1
            if lock_token:
                self._store(value_key, lock_key, None, lock_token)
            raise
        self._store(value_key, lock_key, quote, lock_token)
        return quote

    async def _get_many(
        self, symbols: list[str], user: str | Mapping[str, str], now: int
    ) -> dict[str, PriceQuote]:
        found: dict[str, PriceQuote] = {}
        for symbol in symbols:
            quote = self._local.get(symbol)
            if quote is not None and quote.usable_at(now):
                self.hits_local += 1
                found[symbol] = quote
        unseen = [s for s in symbols if s not in found and s not in self._inflight]
        if unseen and self._redis_ready():
            keys = [self.key_prefix + s for s in unseen]
            try:
                assert self._redis is not None
                values = await self._guard(self._redis.execute("MGET", *keys))
            except RedisError:
                values = []
            for symbol, raw in zip(unseen, values):
                quote = None if raw is None else decode_quote(symbol, raw)
                if quote is not None and quote.usable_at(now):
                    self.hits_redis += 1
                    self._local[symbol] = quote
                    found[symbol] = quote
        rest = [s for s in symbols if s not in found]
        lookups = [self.get(s, user if isinstance(user, str) else user[s], now) for s in rest]
        for symbol, (ok, value) in zip(rest, await DeferredList(lookups, consumeErrors=True)):
            if ok:
                found[symbol] = value
        return found

    def _store(
        self, value_key: str, lock_key: str, quote: PriceQuote | None, lock_token: str
    ) -> None:
        """Publish a fetched quote to Redis and release our lock, in the background."""
        if not self._redis_ready():
            return
        ttl_ms = 0
        if quote is not None:
            ttl_ms = quote.quote_time + QUOTE_LIFETIME_MS - int(self._clock.seconds() * 1000)
        if ttl_ms <= 0 and not lock_token:
            return
        encoded = "" if quote is None else encode_quote(quote)
        d = self._redis_call(
            _STORE_AND_UNLOCK, [value_key, lock_key], [encoded, max(ttl_ms, 0), lock_token]
        )
        d.addErrback(_ignore_redis_error)

    def _redis_ready(self) -> bool:
        return self._redis is not None and self._clock.seconds() >= self._redis_retry_at

    def _redis_call(self, script: Script, keys: list[str], args: list[Any]) -> Deferred[Any]:
        assert self._redis is not None
        return self._guard(self._redis.run_script(script, keys, args))

    def _guard(self, d: Deferred[Any]) -> Deferred[Any]:
        """Track Redis health from a call's outcome (the circuit breaker)."""

        def ok(result: Any) -> Any:
            self._backoff = self.retry_after
            return result

        def failed(failure: Failure) -> Failure:
            failure.trap(RedisError)
            self.redis_errors += 1
            now = self._clock.seconds()
            if now >= self._redis_retry_at:  # one failing burst opens the breaker once
                self._redis_retry_at = now + self._backoff
                self._backoff = min(self._backoff * 2, self.retry_max)
            return failure

        return d.addCallbacks(ok, failed)


def _ignore_redis_error(failure: Failure) -> None:
    failure.trap(RedisError)  # already counted; publishing is best effort
