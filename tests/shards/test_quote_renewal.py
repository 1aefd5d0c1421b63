"""A shard renews a quote its users still use shortly before it runs out, so that their
commands do not wait for the fetch; the renewal's quote-server hit is audited under a txn of its
own, from the gateway, as a trigger sweep's is."""

from __future__ import annotations

import pytest

from protocol.quote import PriceQuote
from server.shards.engine import summary
from server.store import codec
from tests.shards.shard_harness import CachingQuotes, Shard, recovered

AHEAD_MS = 15_000


@pytest.fixture
def shard(tmp_path):
    s = Shard(tmp_path, quotes=CachingQuotes(), renew_ahead_ms=AHEAD_MS)
    s.send("[1] ADD,alice,100.00")
    s.turn()
    s.quotes.local["ABC"] = PriceQuote("ABC", 1_000, s.now(), "key", "bob")
    yield s
    s.close()


def test_a_quote_with_plenty_of_life_left_is_not_renewed(shard):
    shard.turn(30.0)
    shard.send("[2] QUOTE,alice,ABC")
    shard.turn()
    assert shard.quotes.renewing == {}


def test_a_command_near_the_end_of_its_quote_is_answered_at_once_and_starts_a_renewal(shard):
    shard.turn(56.0)
    (quote,) = shard.send("[2] QUOTE,alice,ABC")
    shard.turn()
    assert shard.replies()[quote]["result"]["price"] == "10.00"
    assert list(shard.quotes.renewing) == ["ABC"]
    assert shard.quotes.renewing["ABC"][0] == "alice"  # fetched in the name of who used it


def test_a_renewed_quote_is_audited_under_a_txn_from_the_gateway(shard, tmp_path):
    shard.turn(56.0)
    shard.send("[2] QUOTE,alice,ABC")
    shard.turn()
    shard.quotes.answer_renewal("ABC", 1_200, shard.now())
    ((_, _token, count),) = shard.txn_requests()
    assert count == 1
    shard.give_txns(900)
    shard.turn()
    (_, data) = list(shard.journal.records())[-1]
    (hit,) = codec.decode_events(data)
    assert (hit.kind, hit.txn, hit.user) == ("quoteServer", 900, "alice")
    assert shard.journal.max_txn() == 900


def test_after_a_renewal_the_old_quotes_end_keeps_no_command_waiting(shard):
    shard.turn(56.0)
    shard.send("[2] QUOTE,alice,ABC")
    shard.turn()
    shard.quotes.answer_renewal("ABC", 1_200, shard.now())
    shard.give_txns(900)
    shard.turn(6.0)  # the first quote ran out meanwhile
    (quote,) = shard.send("[3] QUOTE,alice,ABC")
    shard.turn()
    assert shard.replies()[quote]["result"]["price"] == "12.00"
    assert shard.quotes.waiting == []  # nothing was fetched on the command's behalf


def test_a_renewed_quote_that_crosses_a_trigger_fires_it_and_recovers_the_same(shard, tmp_path):
    shard.send("[2] SET_BUY_AMOUNT,alice,ABC,50.00", "[3] SET_BUY_TRIGGER,alice,ABC,9.00")
    shard.turn(56.0)
    shard.send("[4] QUOTE,alice,ABC")
    shard.turn()
    shard.quotes.answer_renewal("ABC", 850, shard.now())
    shard.give_txns(900)
    shard.turn()
    (event,) = shard.pushed()
    assert (event["event"], event["txn"], event["shares"]) == ("trigger_fired", 900, 5)
    live = summary(shard.service.engine.accounts["alice"])
    assert summary(recovered(tmp_path).accounts["alice"]) == live
