"""The shard at work, driven directly: per-user order, group commit, expiry timers, the sweep."""

from __future__ import annotations

import json

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from protocol.quote import PriceQuote
from server.quotes.errors import QuoteUnavailable
from server.shards.engine import Engine
from server.shards.service import DumpSettings, ShardService
from server.store.sqlite import SqliteStore

T0 = 1_764_072_000_000


class ManualQuotes:
    """Quotes that arrive when the test says so."""

    def __init__(self) -> None:
        self.prices: dict[str, int] = {}
        self.waiting: list[tuple[str, str, defer.Deferred]] = []
        self.fetches = 0

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


class Shard:
    def __init__(self, tmp_path) -> None:
        self.clock = Clock()
        self.clock.advance(T0 / 1000)
        self.store = SqliteStore(tmp_path / "shard.sqlite")
        self.quotes = ManualQuotes()
        self.sent: list[tuple] = []
        self.service = ShardService(
            0, 1, Engine(), self.store, self.quotes, self.sent.append,
            DumpSettings(tmp_path / "dumps", lambda: SqliteStore(tmp_path / "shard.sqlite")),
            reactor=self.clock, sweep_interval=2.0, commit_thread=False,
            clock=lambda: int(self.clock.seconds() * 1000))
        self.service.start()
        self.req = 0

    def send(self, *lines: str) -> list[int]:
        ids = []
        batch = []
        for line in lines:
            self.req += 1
            ids.append(self.req)
            batch.append(("C", self.req, int(self.clock.seconds() * 1000), line))
        self.service.on_batch(batch)
        return ids

    def turn(self, seconds: float = 0.0) -> None:
        self.clock.advance(seconds)

    def replies(self) -> dict[int, dict]:
        return {req_id: json.loads(line) for m in self.sent if m[0] == "R"
                for req_id, line in zip(m[1], m[2].split(b"\n"), strict=True)}

    def events(self) -> list[dict]:
        return [json.loads(m[2]) for m in self.sent if m[0] == "E"]


@pytest.fixture
def shard(tmp_path):
    s = Shard(tmp_path)
    yield s
    s.service.stop()
    s.store.close()


def test_replies_wait_for_the_commit_of_their_batch(shard):
    (add,) = shard.send("[1] ADD,alice,100.00")
    assert shard.replies() == {}  # executed, not yet committed
    shard.turn()
    assert shard.replies()[add]["ok"]
    assert shard.store.load_account("alice").cash == 10_000


def test_a_user_waiting_for_a_quote_does_not_hold_up_another_user(shard):
    shard.send("[1] ADD,alice,100.00", "[2] ADD,bob,100.00")
    shard.turn()
    buy, after = shard.send("[3] BUY,alice,ABC,50.00", "[4] ADD,alice,1.00")
    (bob,) = shard.send("[5] ADD,bob,1.00")
    shard.turn()
    replies = shard.replies()
    assert bob in replies and buy not in replies and after not in replies
    shard.quotes.answer("ABC", 1_000, int(shard.clock.seconds() * 1000))
    shard.turn()
    replies = shard.replies()
    assert replies[buy]["result"]["shares"] == 5
    assert replies[after]["result"]["cash"] == "51.00"  # ran after the BUY, in order


def test_a_failed_quote_answers_quote_unavailable_and_the_queue_moves_on(shard):
    shard.send("[1] ADD,alice,100.00")
    buy, after = shard.send("[2] BUY,alice,ABC,50.00", "[3] ADD,alice,1.00")
    shard.quotes.fail("ABC")
    shard.turn()
    replies = shard.replies()
    assert replies[buy]["error"]["code"] == "quote_unavailable"
    assert replies[after]["result"]["cash"] == "101.00"


def test_a_pending_buy_expires_on_the_timer_and_is_pushed(shard):
    shard.send("[1] ADD,alice,100.00", "[2] BUY,alice,ABC,50.00")
    shard.quotes.answer("ABC", 1_000, int(shard.clock.seconds() * 1000))
    shard.turn()
    shard.turn(59.0)
    assert shard.events() == []
    shard.turn(1.5)
    shard.turn()
    (event,) = shard.events()
    assert event["event"] == "pending_expired" and event["cash"] == "100.00"
    assert shard.store.load_account("alice").cash == 10_000


def test_the_sweep_fires_an_armed_trigger_and_pushes_it(shard):
    shard.send("[1] ADD,alice,100.00", "[2] SET_BUY_AMOUNT,alice,ABC,50.00",
               "[3] SET_BUY_TRIGGER,alice,ABC,10.00")
    shard.turn()
    shard.quotes.prices["ABC"] = 900
    shard.turn(2.0)
    shard.turn()
    (event,) = shard.events()
    assert event["event"] == "trigger_fired" and event["shares"] == 5
    stored = shard.store.load_account("alice")
    assert stored.holdings["ABC"] == 5 and stored.cash == 10_000 - 4_500


def test_a_retried_txn_after_a_restart_is_replayed_from_the_store(shard, tmp_path):
    shard.send("[1] ADD,alice,100.00")
    shard.turn()
    fresh = Shard(tmp_path)  # a new process: state comes from the store alone
    (retry,) = fresh.send("[1] ADD,alice,100.00")
    fresh.turn()
    reply = fresh.replies()[retry]
    assert reply["replayed"] is True and reply["result"]["cash"] == "100.00"
    fresh.service.stop()


def test_stats_count_commands_batches_and_errors(shard):
    shard.send("[1] ADD,alice,100.00", "[2] COMMIT_BUY,alice")
    shard.turn()
    stats = shard.service.stats()
    assert stats["commands"] == 2 and stats["batches"] == 1
    assert stats["errors"] == {"no_pending_buy": 1}
