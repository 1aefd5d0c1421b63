"""A shard service as its worker runs it, on a fake clock and a real SQLite journal, with the
gateway and the quote service played by the test."""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.internet.task import Clock

from protocol.quote import PriceQuote
from server.quotes.errors import QuoteUnavailable
from server.shards.engine import Engine
from server.shards.recovery import recover
from server.shards.service import DumpSettings, ShardService
from server.store.sqlite_journal import SqliteJournal

T0 = 1_764_072_000_000


class ManualQuotes:
    """Quotes that arrive when the test says so; the sweep's come from `prices` at once."""

    def __init__(self) -> None:
        self.prices: dict[str, int] = {}
        self.waiting: list[tuple[str, str, defer.Deferred]] = []

    def peek(self, symbol: str, now: int) -> PriceQuote | None:
        return None

    def get(self, symbol: str, user: str, now: int) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.waiting.append((symbol, user, d))
        return d

    def get_many(self, symbols, users, now):
        return defer.succeed({s: PriceQuote(s, self.prices[s], now, "k", users[s])
                              for s in symbols if s in self.prices})

    def answer(self, symbol: str, price: int, at: int) -> None:
        for item in [w for w in self.waiting if w[0] == symbol]:
            self.waiting.remove(item)
            item[2].callback(PriceQuote(symbol, price, at, "key", item[1], True))

    def fail(self, symbol: str) -> None:
        for item in [w for w in self.waiting if w[0] == symbol]:
            self.waiting.remove(item)
            item[2].errback(QuoteUnavailable(symbol, "down"))

    def stats(self) -> dict:
        return {}


class CachingQuotes(ManualQuotes):
    """ManualQuotes with a local cache in front (`peek`) and background renewals (`renew`)
    that arrive when the test says so, as QuoteCache keeps them."""

    def __init__(self) -> None:
        super().__init__()
        self.local: dict[str, PriceQuote] = {}
        self.renewing: dict[str, tuple[str, defer.Deferred]] = {}

    def peek(self, symbol: str, now: int) -> PriceQuote | None:
        quote = self.local.get(symbol)
        return quote if quote is not None and quote.usable_at(now) else None

    def renew(self, symbol: str, user: str, now: int, keep_ms: int) -> defer.Deferred | None:
        if symbol in self.renewing:
            return None
        d: defer.Deferred = defer.Deferred()
        self.renewing[symbol] = (user, d)
        return d

    def answer_renewal(self, symbol: str, price: int, at: int) -> None:
        user, d = self.renewing.pop(symbol)
        quote = PriceQuote(symbol, price, at, "key", user, True)
        self.local[symbol] = quote.cached()
        d.callback(quote)


class Shard:
    """A shard service as its worker runs it, with the gateway played by the test."""

    def __init__(self, tmp_path, *, snapshot_interval: float = 5.0, snapshot_every: int = 10**9,
                 start: float = T0 / 1000, clock: Clock | None = None,
                 quotes: ManualQuotes | None = None, renew_ahead_ms: int = 0) -> None:
        self.clock = clock or Clock()
        if clock is None:
            self.clock.advance(start)
        self.journal = SqliteJournal(tmp_path, 0)
        self.quotes = quotes or ManualQuotes()
        self.sent: list[tuple] = []
        self.exits: list[int] = []
        self.service = ShardService(
            0, 1, Engine(), self.journal, self.quotes, self.sent.append,
            DumpSettings(tmp_path / "dumps", lambda i: SqliteJournal(tmp_path, i)),
            reactor=self.clock, sweep_interval=2.0, snapshot_interval=snapshot_interval,
            snapshot_every=snapshot_every, renew_ahead_ms=renew_ahead_ms,
            snapshot_slice_gap=0.0,  # one slice per turn: tests say which turn does what
            threaded=False, clock=self.now, exit=self.exits.append)
        self.service.start()
        self.req = 0

    def now(self) -> int:
        return int(self.clock.seconds() * 1000)

    def send(self, *lines: str, at: int | None = None) -> list[int]:
        ids = []
        batch = []
        for line in lines:
            self.req += 1
            ids.append(self.req)
            batch.append(("C", self.req, self.now() if at is None else at, line))
        self.service.on_batch(batch)
        return ids

    def turn(self, seconds: float = 0.0) -> None:
        self.clock.advance(seconds)

    def replies(self) -> dict[int, dict]:
        return {req_id: json.loads(line) for m in self.sent if m[0] == "R"
                for req_id, line in zip(m[1], m[2].split("\n"), strict=True)}

    def pushed(self) -> list[dict]:
        return [json.loads(m[2]) for m in self.sent if m[0] == "E"]

    def txn_requests(self) -> list[tuple]:
        return [m for m in self.sent if m[0] == "T"]

    def give_txns(self, first: int) -> None:
        (_, token, _count), = self.txn_requests()[-1:]
        self.service.on_batch([("T", token, first)])

    def close(self) -> None:
        self.service.stop()
        self.journal.close()


def recovered(tmp_path) -> Engine:
    """The state a restarted shard recovers from the journal and snapshots in `tmp_path`."""
    journal = SqliteJournal(tmp_path, 0)
    try:
        engine = Engine()
        recover(engine, journal)
        return engine
    finally:
        journal.close()
