"""The summary view: DISPLAY_SUMMARY's result, the same whether rendered afresh or from what the
view kept of the user's previous summary."""

from server.shards.account import Account, BuyTrigger, Pending, SellTrigger
from server.shards.engine.summary import SUMMARY_TRANSACTIONS, SummaryView, summary

T0 = 1_000_000


def funded(n_records: int = 0) -> Account:
    acct = Account("ann", cash=12_345)
    for i in range(1, n_records + 1):
        acct.record(i, T0 + i, "add", None, 0, None, 100)
    return acct


def test_an_empty_account_shows_zeros_and_empty_lists():
    assert summary(Account("ann")) == {
        "user": "ann", "cash": "0.00", "holdings": {}, "pending_buys": [], "pending_sells": [],
        "buy_triggers": [], "sell_triggers": [], "transactions": [], "transactions_total": 0}


def test_holdings_are_sorted_by_symbol_without_zeros():
    acct = Account("ann", holdings={"XY": 3, "ABC": 0, "AB": 1})
    assert summary(acct)["holdings"] == {"AB": 1, "XY": 3}
    assert list(summary(acct)["holdings"]) == ["AB", "XY"]


def test_pending_entries_are_shown_newest_first():
    acct = Account("ann", pending_buys=[Pending(1, "ABC", 2, 100, T0),
                                        Pending(2, "XY", 1, 250, T0 + 5)])
    assert [p["txn"] for p in summary(acct)["pending_buys"]] == [2, 1]
    assert summary(acct)["pending_buys"][0] == {"txn": 2, "symbol": "XY", "shares": 1,
                                                "price": "2.50", "expires_at": T0 + 5 + 60_000}


def test_trigger_tables_are_in_symbol_order():
    acct = Account("ann", buy_triggers={"XY": BuyTrigger(500), "AB": BuyTrigger(700, 300)},
                   sell_triggers={"AB": SellTrigger(900, 450, 2)})
    shown = summary(acct)
    assert shown["buy_triggers"] == [
        {"symbol": "AB", "reserved": "7.00", "trigger_price": "3.00"},
        {"symbol": "XY", "reserved": "5.00", "trigger_price": None}]
    assert shown["sell_triggers"] == [
        {"symbol": "AB", "amount": "9.00", "trigger_price": "4.50", "reserved_shares": 2}]


def test_the_twenty_newest_records_are_shown_newest_first():
    shown = summary(funded(25))
    assert [t["txn"] for t in shown["transactions"]] == list(range(25, 25 - SUMMARY_TRANSACTIONS,
                                                                  -1))
    assert shown["transactions_total"] == 25


def test_before_txn_shows_the_page_of_older_records():
    shown = summary(funded(25), before_txn=5)
    assert [t["txn"] for t in shown["transactions"]] == [4, 3, 2, 1]


def test_records_added_since_the_last_summary_are_shown():
    acct = funded(3)
    view = SummaryView()
    view.render(acct)
    acct.record(4, T0 + 4, "add", None, 0, None, 100)
    assert view.render(acct) == summary(acct)


def test_more_than_twenty_records_added_since_the_last_summary_are_shown():
    acct = funded(3)
    view = SummaryView()
    view.render(acct)
    for i in range(4, 30):
        acct.record(i, T0 + i, "add", None, 0, None, 100)
    assert view.render(acct) == summary(acct)


def test_a_holding_that_changed_since_the_last_summary_is_shown():
    acct = Account("ann", holdings={"AB": 1})
    view = SummaryView()
    view.render(acct)
    acct.holdings["AB"] = 0
    acct.holdings["XY"] = 4
    assert view.render(acct)["holdings"] == {"XY": 4}


def test_a_changed_trigger_is_shown_once_the_view_is_told():
    acct = Account("ann", buy_triggers={"AB": BuyTrigger(700)})
    view = SummaryView()
    view.render(acct)
    acct.buy_triggers["AB"].price = 300
    view.trigger_changed("ann", "AB", buy=True)
    assert view.render(acct)["buy_triggers"] == [
        {"symbol": "AB", "reserved": "7.00", "trigger_price": "3.00"}]


def test_fired_triggers_are_gone_once_the_view_is_told():
    acct = Account("ann", sell_triggers={"AB": SellTrigger(900, 450, 2)})
    view = SummaryView()
    view.render(acct)
    del acct.sell_triggers["AB"]
    view.triggers_fired("ann")
    assert view.render(acct)["sell_triggers"] == []


def test_an_account_replaced_by_a_snapshot_is_rendered_afresh():
    view = SummaryView()
    view.render(funded(5))
    fresh = Account("ann", cash=1, buy_triggers={"AB": BuyTrigger(700)})
    assert view.render(fresh) == summary(fresh)
