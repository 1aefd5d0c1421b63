"""client_tui.model.quotes: quote age and freshness, refresh due, sparkline."""

import pytest

from client_tui.model.quotes import (
    Freshness,
    QuoteBook,
    QuoteSample,
    freshness,
    parse_quote,
    sparkline,
)
from client_tui.model.summary import ReplyShapeError


def sample(price, quote_time, received_at=0, age_ms=0, symbol="ABC"):
    return QuoteSample(symbol, price, quote_time, f"key{quote_time}", age_ms, received_at)


@pytest.mark.parametrize("age, state", [(0, Freshness.FRESH), (44_999, Freshness.FRESH),
                                        (45_000, Freshness.AGING), (59_999, Freshness.AGING),
                                        (60_000, Freshness.STALE)])
def test_a_quote_turns_aging_at_45s_and_stale_when_it_can_no_longer_back_an_order(age, state):
    assert freshness(age) == state


def test_age_is_the_servers_age_plus_local_time_since_the_reply():
    s = sample(1234, quote_time=999_999_000, received_at=5_000, age_ms=1_200)
    assert s.age_at(5_000) == 1_200
    assert s.age_at(15_000) == 11_200


def test_parse_quote_reads_the_reply():
    s = parse_quote({"symbol": "ABC", "price": "12.34", "quote_time": 7, "cryptokey": "k",
                     "age_ms": 15}, received_at=100)
    assert (s.symbol, s.price, s.quote_time, s.cryptokey, s.age_ms, s.received_at) == (
        "ABC", 1234, 7, "k", 15, 100)


def test_parse_quote_rejects_a_reply_without_price():
    with pytest.raises(ReplyShapeError):
        parse_quote({"symbol": "ABC", "quote_time": 7}, received_at=0)


def test_the_same_quote_seen_twice_is_one_point():
    book = QuoteBook()
    assert book.record(sample(100, 1)) is True
    assert book.record(sample(100, 1, received_at=50, age_ms=50)) is False
    assert book.history("ABC") == [100]
    assert book.latest("ABC").received_at == 50


def test_history_is_ordered_by_quote_time_and_latest_is_the_newest():
    book = QuoteBook()
    for price, at in [(110, 2), (100, 1), (120, 3)]:
        book.record(sample(price, at))
    assert book.history("ABC") == [100, 110, 120]
    assert book.latest("ABC").price == 120
    assert book.last_prices() == {"ABC": 120}


def test_history_keeps_the_newest_sixty():
    book = QuoteBook()
    for i in range(70):
        book.record(sample(i, i))
    assert book.history("ABC") == list(range(10, 70))


def test_a_symbol_never_quoted_is_due():
    assert QuoteBook().due("ABC", now_ms=0)


def test_a_fresh_quote_is_not_due_until_its_refresh_interval_or_expiry():
    book = QuoteBook()
    book.record(sample(100, 1, received_at=1_000, age_ms=0))
    assert not book.due("ABC", now_ms=10_000, refresh_every_ms=20_000)
    assert book.due("ABC", now_ms=21_000, refresh_every_ms=20_000)


def test_an_expired_quote_is_due_at_once():
    book = QuoteBook()
    book.record(sample(100, 1, received_at=1_000, age_ms=59_000))
    assert not book.due("ABC", now_ms=1_500, refresh_every_ms=60_000)
    assert book.due("ABC", now_ms=2_000, refresh_every_ms=60_000)


def test_forget_drops_a_symbol():
    book = QuoteBook()
    book.record(sample(100, 1))
    book.forget("ABC")
    assert book.latest("ABC") is None and book.history("ABC") == []


def test_sparkline_scales_between_min_and_max():
    assert sparkline([100, 150, 200], width=10) == "▁▅█"


def test_sparkline_of_a_flat_series_is_a_level_line():
    assert sparkline([5, 5, 5], width=10) == "▄▄▄"


def test_sparkline_shows_the_newest_values_that_fit():
    assert sparkline([0, 100, 0, 100], width=2) == "▁█"


def test_sparkline_of_nothing_is_empty():
    assert sparkline([], width=5) == ""


def test_the_book_says_which_symbols_were_asked_for_and_lists_samples():
    from client_tui.model.quotes import QuoteBook, QuoteSample

    book = QuoteBook()
    assert not book.asked("ABC") and book.samples("ABC") == []
    sample = QuoteSample("ABC", 1234, 1000, "k", 0, 1000)
    book.record(sample)
    assert book.asked("ABC") and book.samples("ABC") == [sample]
