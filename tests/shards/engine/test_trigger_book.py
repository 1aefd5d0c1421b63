"""The trigger book: which armed triggers a sweep quote crosses, and whom to ask for a symbol."""

from protocol.quote import QUOTE_LIFETIME_MS, PriceQuote
from server.shards.account import Account, BuyTrigger, SellTrigger
from server.shards.engine.trigger_book import TriggerBook

T0 = 1_000_000


def quote(symbol: str, price: int, at: int = T0) -> PriceQuote:
    return PriceQuote(symbol, price, at, "key", "ann")


def book_with(*accounts: Account) -> TriggerBook:
    book = TriggerBook({a.user: a for a in accounts})
    for acct in accounts:
        book.load(acct)
    return book


def test_a_buy_trigger_without_a_price_is_not_armed():
    book = book_with(Account("ann", buy_triggers={"ABC": BuyTrigger(1_000)}))
    assert book.armed_symbols() == {}
    assert book.crossings(quote("ABC", 1), T0) == []


def test_a_sell_trigger_holding_no_shares_is_not_armed():
    book = book_with(Account("ann", sell_triggers={"ABC": SellTrigger(1_000, 500, 0)}))
    assert book.armed_symbols() == {}


def test_an_armed_symbol_is_asked_for_in_the_name_of_its_first_user():
    book = book_with(Account("cy", buy_triggers={"ABC": BuyTrigger(1_000, 500)}),
                     Account("bob", sell_triggers={"ABC": SellTrigger(1_000, 800, 1)}))
    assert book.armed_symbols() == {"ABC": "bob"}


def test_a_buy_trigger_fires_at_or_below_its_price():
    book = book_with(Account("ann", buy_triggers={"ABC": BuyTrigger(1_000, 500)}))
    assert book.crossings(quote("ABC", 501), T0) == []
    assert book.crossings(quote("ABC", 500), T0) == [("ann", True)]


def test_a_sell_trigger_fires_at_or_above_its_price():
    book = book_with(Account("ann", sell_triggers={"ABC": SellTrigger(1_000, 800, 1)}))
    assert book.crossings(quote("ABC", 799), T0) == []
    assert book.crossings(quote("ABC", 800), T0) == [("ann", False)]


def test_crossings_come_in_user_order_buy_before_sell():
    book = book_with(
        Account("bob", buy_triggers={"ABC": BuyTrigger(1_000, 600)},
                sell_triggers={"ABC": SellTrigger(1_000, 400, 2)}),
        Account("ann", sell_triggers={"ABC": SellTrigger(1_000, 500, 1)}))
    assert book.crossings(quote("ABC", 550), T0) == [("ann", False), ("bob", True),
                                                     ("bob", False)]


def test_a_quote_past_its_life_fires_nothing():
    book = book_with(Account("ann", buy_triggers={"ABC": BuyTrigger(1_000, 500)}))
    assert book.crossings(quote("ABC", 100), T0 + QUOTE_LIFETIME_MS) == []


def test_update_disarms_a_trigger_that_went_away():
    acct = Account("ann", buy_triggers={"ABC": BuyTrigger(1_000, 500)})
    book = book_with(acct)
    del acct.buy_triggers["ABC"]
    book.update(acct, "ABC")
    assert book.armed_symbols() == {}
    assert book.crossings(quote("ABC", 1), T0) == []


def test_update_sees_a_new_price():
    acct = Account("ann", buy_triggers={"ABC": BuyTrigger(1_000, 500)})
    book = book_with(acct)
    assert book.crossings(quote("ABC", 700), T0) == []
    acct.buy_triggers["ABC"].price = 700
    book.update(acct, "ABC")
    assert book.crossings(quote("ABC", 700), T0) == [("ann", True)]
