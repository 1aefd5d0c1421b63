"""client_tui.model.store: the account as last seen, and views derived from it."""

from client_tui.model.quotes import QuoteSample
from client_tui.model.store import AccountStore
from client_tui.model.summary import BuyTrigger, PendingOrder, Summary, Transaction


def summary(**kw):
    base = dict(user="u", cash=1000, holdings={}, pending_buys=(), pending_sells=(),
                buy_triggers=(), sell_triggers=(), transactions=(), transactions_total=0)
    base.update(kw)
    return Summary(**base)


def test_a_summary_merges_its_transactions_into_the_history():
    store = AccountStore("u")
    t = Transaction(1, 5, "add", None, 0, None, 1000)
    assert store.apply_summary(summary(transactions=(t,), transactions_total=1)) == 1
    assert store.summary_loaded and list(store.history.records) == [t]


def test_set_cash_changes_only_the_cash():
    store = AccountStore("u")
    store.apply_summary(summary(holdings={"ABC": 1}))
    store.set_cash(5)
    assert store.summary.cash == 5 and store.summary.holdings == {"ABC": 1}


def test_watchlist_keeps_order_and_refuses_duplicates():
    store = AccountStore("u")
    assert store.watch("ABC") and store.watch("XYZ") and not store.watch("ABC")
    assert store.watchlist == ["ABC", "XYZ"]
    assert store.unwatch("ABC") and not store.unwatch("ABC")
    assert store.watchlist == ["XYZ"]


def test_newest_pending_is_the_top_of_the_servers_stack():
    store = AccountStore("u")
    store.apply_summary(summary(pending_buys=(PendingOrder("buy", 7, "ABC", 1, 1, 2),
                                              PendingOrder("buy", 5, "XYZ", 1, 1, 1))))
    assert store.newest_pending("buy").txn == 7
    assert store.newest_pending("sell") is None


def test_symbols_in_play_are_watched_then_owned_pending_and_triggered():
    store = AccountStore("u")
    store.watch("QRS")
    store.apply_summary(summary(holdings={"ABC": 1},
                                pending_sells=(PendingOrder("sell", 1, "DEF", 1, 1, 1),),
                                buy_triggers=(BuyTrigger("XYZ", 100, None),)))
    assert store.symbols_in_play() == ["QRS", "ABC", "DEF", "XYZ"]


def test_totals_use_the_last_quotes():
    store = AccountStore("u")
    store.apply_summary(summary(cash=100, holdings={"ABC": 2}))
    store.quotes.record(QuoteSample("ABC", 50, 1, "k", 0, 0))
    assert store.totals().total_value == 200
