"""The pure trading engine against COMMANDS.md, rule by rule, in the order of that document.

Prices are cents; the desk (tests/shards/harness.py) quotes ABC at $10.00 and XY at $25.00 unless
a test says otherwise, and numbers every line with the next txn.
"""

import dataclasses

import pytest

from protocol import commands as c
from protocol.errors import ErrorCode
from protocol.quote import PriceQuote
from protocol.replies import PENDING_EXPIRED, TRIGGER_FIRED, PushedEvent, Reply
from server.shards.audit_events import (
    ACCOUNT_TRANSACTION,
    DEBUG_EVENT,
    ERROR_EVENT,
    QUOTE_SERVER,
    SYSTEM_EVENT,
    USER_COMMAND,
    TxRecord,
)
from server.shards.engine import (
    SUMMARY_TRANSACTIONS,
    DumpRequest,
    Engine,
    NeedQuote,
    quote_unavailable,
    summary,
)
from tests.shards.harness import T0, Desk

#: u1 holds 10 ABC bought at $10.00 and has $900.00 cash.
HOLD_10 = ["ADD,u1,1000.00", "BUY,u1,ABC,100.00", "COMMIT_BUY,u1"]
MINUTE = 60_000


def setup(desk: Desk, lines: list[str]) -> None:
    for line in lines:
        reply = desk.run(line)
        assert reply.ok, (line, reply)


# --- state per user, accounts ---------------------------------------------------------------


def test_add_creates_the_account_with_the_amount_as_cash(desk):
    assert desk.ok("ADD,u1,100.00") == {"user": "u1", "amount": "100.00", "cash": "100.00"}
    assert desk.summary("u1")["cash"] == "100.00"


def test_add_adds_to_the_cash_already_there(desk):
    desk.ok("ADD,u1,100.00")
    assert desk.ok("ADD,u1,0.01")["cash"] == "100.01"


NEEDS_ACCOUNT = [
    "BUY,u9,ABC,1", "COMMIT_BUY,u9", "CANCEL_BUY,u9", "SELL,u9,ABC,1", "COMMIT_SELL,u9",
    "CANCEL_SELL,u9", "SET_BUY_AMOUNT,u9,ABC,1", "CANCEL_SET_BUY,u9,ABC",
    "SET_BUY_TRIGGER,u9,ABC,1", "SET_SELL_AMOUNT,u9,ABC,1", "SET_SELL_TRIGGER,u9,ABC,1",
    "CANCEL_SET_SELL,u9,ABC", "DISPLAY_SUMMARY,u9", "DUMPLOG,u9,u9.xml",
]


@pytest.mark.parametrize("line", NEEDS_ACCOUNT)
def test_every_command_but_add_and_quote_on_a_user_with_no_account_fails_unknown_user(desk, line):
    assert desk.fails(line) == "unknown_user"
    assert desk.asked == []  # the account check comes before any quote
    assert "u9" not in desk.engine.accounts
    assert desk.kinds_of(desk.txn) == [USER_COMMAND, ERROR_EVENT]


def test_quote_needs_no_account(desk):
    assert desk.ok("QUOTE,u9,ABC")["price"] == "10.00"
    assert "u9" not in desk.engine.accounts


def test_signed_up_user_has_zero_cash_and_empty_lists(desk):
    assert desk.engine.open_account("u2", desk.now) is True
    assert desk.summary("u2") == {
        "user": "u2", "cash": "0.00", "holdings": {}, "pending_buys": [], "pending_sells": [],
        "buy_triggers": [], "sell_triggers": [], "transactions": [], "transactions_total": 0}


def test_signing_up_an_existing_user_changes_nothing(desk):
    desk.ok("ADD,u1,5.00")
    assert desk.engine.open_account("u1", desk.now) is False
    assert desk.summary("u1")["cash"] == "5.00"


def test_time_is_the_one_carried_with_the_command(desk):
    desk.ok("ADD,u1,100.00")
    desk.now = T0 + 12_345
    assert desk.ok("BUY,u1,ABC,10.00")["expires_at"] == T0 + 12_345 + MINUTE


# --- order of checks --------------------------------------------------------------------------


def test_buy_checks_cash_before_asking_for_a_quote(desk):
    desk.ok("ADD,u1,10.00")
    assert desk.fails("BUY,u1,ABC,10.01") == "insufficient_funds"
    assert desk.asked == []
    assert desk.kinds_of(desk.txn) == [USER_COMMAND, ERROR_EVENT]


def test_sell_without_free_shares_fails_before_asking_for_a_quote(desk):
    desk.ok("ADD,u1,10.00")
    assert desk.fails("SELL,u1,ABC,1.00") == "insufficient_shares"
    assert desk.asked == []


def test_a_check_without_price_beats_an_unavailable_quote(desk):
    desk.ok("ADD,u1,10.00")
    assert desk.fails("BUY,u1,ABC,20.00", unavailable=True) == "insufficient_funds"
    assert desk.fails("SELL,u1,ABC,20.00", unavailable=True) == "insufficient_shares"


@pytest.mark.parametrize("line", ["QUOTE,u1,ABC", "BUY,u1,ABC,10.00", "SELL,u1,ABC,10.00"])
def test_command_that_gets_no_quote_fails_quote_unavailable(desk, line):
    setup(desk, HOLD_10)
    before = desk.summary("u1")
    assert desk.fails(line, unavailable=True) == "quote_unavailable"
    assert desk.summary("u1") == before
    assert desk.kinds_of(desk.txn - 1) == [USER_COMMAND, ERROR_EVENT]


def test_quote_for_a_user_with_no_account_can_fail_quote_unavailable(desk):
    assert desk.fails("QUOTE,u9,ABC", unavailable=True) == "quote_unavailable"
    assert desk.kinds_of(desk.txn) == [USER_COMMAND, ERROR_EVENT]


def test_asking_for_a_quote_names_symbol_and_user_and_changes_nothing(desk):
    desk.ok("ADD,u1,100.00")
    outcome = desk.engine.execute(c.Buy("u1", "XY", 5_000, 2), desk.now)
    assert outcome == NeedQuote("XY", "u1")
    assert not desk.engine.has_effects()
    assert desk.engine.accounts["u1"].last_txn == 1


def test_quote_for_another_symbol_or_past_its_60_s_is_asked_again(desk):
    desk.ok("ADD,u1,100.00")
    buy = c.Buy("u1", "ABC", 5_000, 2)
    other = PriceQuote("XY", 100, desk.now, "k", "u1")
    stale = PriceQuote("ABC", 100, desk.now - MINUTE, "k", "u1")
    assert desk.engine.execute(buy, desk.now, other) == NeedQuote("ABC", "u1")
    assert desk.engine.execute(buy, desk.now, stale) == NeedQuote("ABC", "u1")
    last_ms = PriceQuote("ABC", 100, desk.now - MINUTE + 1, "k", "u1")
    assert desk.engine.execute(buy, desk.now, last_ms).ok


def test_quote_fetched_for_failed_command_is_still_audited(desk):
    desk.ok("ADD,u1,5.00")
    assert desk.fails("BUY,u1,ABC,5.00") == "amount_too_small"
    assert desk.kinds_of(desk.txn) == [USER_COMMAND, QUOTE_SERVER, ERROR_EVENT]


FAILURES = [
    # (setup, failing line, error code), in the order of the command table of COMMANDS.md
    (["ADD,u1,10.00"], "BUY,u1,ABC,10.01", "insufficient_funds"),
    (["ADD,u1,10.00"], "BUY,u1,ABC,9.99", "amount_too_small"),
    (["ADD,u1,10.00"], "COMMIT_BUY,u1", "no_pending_buy"),
    (["ADD,u1,10.00"], "CANCEL_BUY,u1", "no_pending_buy"),
    (["ADD,u1,10.00"], "SELL,u1,ABC,1.00", "insufficient_shares"),
    (HOLD_10, "SELL,u1,ABC,100.01", "insufficient_shares"),
    (HOLD_10, "SELL,u1,ABC,9.99", "amount_too_small"),
    (HOLD_10, "COMMIT_SELL,u1", "no_pending_sell"),
    (HOLD_10, "CANCEL_SELL,u1", "no_pending_sell"),
    (["ADD,u1,10.00"], "SET_BUY_AMOUNT,u1,ABC,10.01", "insufficient_funds"),
    (["ADD,u1,100.00", "SET_BUY_AMOUNT,u1,ABC,50.00", "SET_BUY_TRIGGER,u1,ABC,40.00"],
     "SET_BUY_AMOUNT,u1,ABC,39.99", "amount_too_small"),
    (["ADD,u1,100.00", "SET_BUY_AMOUNT,u1,ABC,50.00"], "SET_BUY_AMOUNT,u1,ABC,100.01",
     "insufficient_funds"),
    (["ADD,u1,10.00"], "SET_BUY_TRIGGER,u1,ABC,5.00", "no_buy_amount"),
    (["ADD,u1,10.00", "SET_BUY_AMOUNT,u1,ABC,5.00"], "SET_BUY_TRIGGER,u1,ABC,5.01",
     "amount_too_small"),
    (["ADD,u1,10.00"], "CANCEL_SET_BUY,u1,ABC", "no_buy_amount"),
    (["ADD,u1,10.00"], "SET_SELL_AMOUNT,u1,ABC,5.00", "no_holding"),
    (HOLD_10 + ["SET_SELL_AMOUNT,u1,ABC,50.00", "SET_SELL_TRIGGER,u1,ABC,20.00"],
     "SET_SELL_AMOUNT,u1,ABC,19.99", "amount_too_small"),
    (HOLD_10 + ["SET_SELL_AMOUNT,u1,ABC,50.00", "SET_SELL_TRIGGER,u1,ABC,20.00"],
     "SET_SELL_AMOUNT,u1,ABC,220.00", "insufficient_shares"),
    (HOLD_10, "SET_SELL_TRIGGER,u1,ABC,5.00", "no_sell_amount"),
    (HOLD_10 + ["SET_SELL_AMOUNT,u1,ABC,50.00"], "SET_SELL_TRIGGER,u1,ABC,50.01",
     "amount_too_small"),
    (HOLD_10 + ["SET_SELL_AMOUNT,u1,ABC,50.00"], "SET_SELL_TRIGGER,u1,ABC,4.50",
     "insufficient_shares"),
    (HOLD_10 + ["SET_SELL_AMOUNT,u1,ABC,50.00", "SET_SELL_TRIGGER,u1,ABC,10.00"],
     "SET_SELL_TRIGGER,u1,ABC,4.50", "insufficient_shares"),
    (HOLD_10, "CANCEL_SET_SELL,u1,ABC", "no_sell_amount"),
]


@pytest.mark.parametrize(("lines", "line", "code"), FAILURES,
                         ids=[f"{line.split(',')[0]}-{code}" for _, line, code in FAILURES])
def test_each_failure_has_its_error_code_and_changes_nothing(desk, lines, line, code):
    setup(desk, lines)
    before = desk.summary("u1")
    assert desk.fails(line) == code
    failed_txn = desk.txn
    assert desk.summary("u1") == before
    errors = [e for e in desk.events_of(failed_txn) if e.kind == ERROR_EVENT]
    assert len(errors) == 1 and errors[0].message
    assert desk.engine.accounts["u1"].last_txn == failed_txn  # stored: errors included


# --- QUOTE ----------------------------------------------------------------------------------


def test_quote_returns_price_quote_time_cryptokey_and_age(desk):
    desk.ok("ADD,u1,1.00")
    quote = PriceQuote("ABC", 1_234, desk.now - 1_500, "Xk3/9", "u1", fresh=False)
    assert desk.ok("QUOTE,u1,ABC", quote=quote) == {
        "symbol": "ABC", "price": "12.34", "quote_time": desk.now - 1_500, "cryptokey": "Xk3/9",
        "age_ms": 1_500}


def test_quote_changes_nothing(desk):
    setup(desk, HOLD_10)
    before = desk.summary("u1")
    desk.ok("QUOTE,u1,ABC")
    assert desk.summary("u1") == before


# --- BUY --------------------------------------------------------------------------------------


def test_buy_holds_cost_of_whole_shares_and_returns_the_rest():
    desk = Desk({"ABC": 3_333}, now=1_764_072_000_000 - MINUTE)
    desk.ok("ADD,u1,1000.00")
    reply = desk.run("[12] BUY,u1,ABC,100.00")
    # PROTOCOL.md's reply example, verbatim
    assert reply.to_json() == (
        '{"txn":12,"cmd":"BUY","ok":true,"result":{"symbol":"ABC","shares":3,"price":"33.33",'
        '"cost":"99.99","expires_at":1764072000000,"cash":"900.01"}}')


def test_buy_needs_cash_of_the_whole_amount_not_only_the_cost():
    desk = Desk({"ABC": 3_000})
    desk.ok("ADD,u1,100.00")
    assert desk.fails("BUY,u1,ABC,100.01") == "insufficient_funds"  # 3 shares would cost 90.00
    assert desk.ok("BUY,u1,ABC,100.00")["cost"] == "90.00"


def test_buy_of_less_than_one_share_fails_amount_too_small(desk):
    desk.ok("ADD,u1,100.00")
    assert desk.fails("BUY,u1,ABC,9.99") == "amount_too_small"
    assert desk.ok("BUY,u1,ABC,10.00")["shares"] == 1


def test_new_pending_buy_goes_on_top_of_the_stack(desk):
    desk.ok("ADD,u1,100.00")
    desk.ok("BUY,u1,ABC,20.00")
    desk.now += 1_000
    desk.ok("BUY,u1,XY,50.00")
    assert desk.summary("u1")["pending_buys"] == [
        {"txn": 3, "symbol": "XY", "shares": 2, "price": "25.00", "expires_at": T0 + 61_000},
        {"txn": 2, "symbol": "ABC", "shares": 2, "price": "10.00", "expires_at": T0 + MINUTE}]


# --- COMMIT_BUY / CANCEL_BUY ------------------------------------------------------------------


def test_commit_buy_takes_newest_alive_pending_buy(desk):
    desk.ok("ADD,u1,100.00")
    desk.ok("BUY,u1,ABC,20.00")
    desk.ok("BUY,u1,ABC,30.00")
    assert desk.ok("COMMIT_BUY,u1") == {"symbol": "ABC", "shares": 3, "price": "10.00",
                                        "cost": "30.00", "holding": 3, "cash": "50.00"}
    summary = desk.summary("u1")
    assert summary["holdings"] == {"ABC": 3}
    assert [p["shares"] for p in summary["pending_buys"]] == [2]


def test_commit_buy_without_pending_buy_fails_no_pending_buy(desk):
    desk.ok("ADD,u1,100.00")
    # PROTOCOL.md's error reply example, verbatim
    assert desk.run("[13] COMMIT_BUY,u1").to_json() == (
        '{"txn":13,"cmd":"COMMIT_BUY","ok":false,"error":{"code":"no_pending_buy",'
        '"message":"no pending BUY within the last 60 s"}}')


def test_commit_buy_skips_pending_buys_older_than_60_s(desk):
    desk.ok("ADD,u1,100.00")
    desk.ok("BUY,u1,ABC,20.00")
    desk.advance(30_000)
    desk.ok("BUY,u1,ABC,30.00")
    desk.advance(30_000, timer=False)  # the first BUY has just expired; only a command notices
    assert desk.ok("COMMIT_BUY,u1")["shares"] == 3
    assert desk.fails("COMMIT_BUY,u1") == "no_pending_buy"
    assert desk.summary("u1")["cash"] == "70.00"


def test_cancel_buy_returns_cost_of_newest_pending_buy_to_cash(desk):
    desk.ok("ADD,u1,100.00")
    desk.ok("BUY,u1,ABC,20.00")
    desk.ok("BUY,u1,ABC,35.00")
    assert desk.ok("CANCEL_BUY,u1") == {"symbol": "ABC", "shares": 3, "price": "10.00",
                                        "cost": "30.00", "cash": "80.00"}
    assert [p["shares"] for p in desk.summary("u1")["pending_buys"]] == [2]
    assert desk.ok("CANCEL_BUY,u1")["cash"] == "100.00"
    assert desk.fails("CANCEL_BUY,u1") == "no_pending_buy"


# --- SELL / COMMIT_SELL / CANCEL_SELL ---------------------------------------------------------


def test_sell_holds_whole_shares_out_of_holdings(desk):
    setup(desk, HOLD_10)
    desk.prices["ABC"] = 1_200
    assert desk.ok("SELL,u1,ABC,30.00") == {
        "symbol": "ABC", "shares": 2, "price": "12.00", "proceeds": "24.00",
        "expires_at": desk.now + MINUTE, "holding": 8, "cash": "900.00"}
    summary = desk.summary("u1")
    assert summary["holdings"] == {"ABC": 8}
    assert summary["pending_sells"] == [{"txn": 4, "symbol": "ABC", "shares": 2, "price": "12.00",
                                         "expires_at": desk.now + MINUTE}]


def test_sell_needs_holdings_worth_the_amount_at_the_quote(desk):
    setup(desk, HOLD_10)
    desk.prices["ABC"] = 1_200
    assert desk.fails("SELL,u1,ABC,120.01") == "insufficient_shares"
    assert desk.ok("SELL,u1,ABC,120.00")["shares"] == 10


def test_sell_of_less_than_one_share_fails_amount_too_small(desk):
    setup(desk, HOLD_10)
    assert desk.fails("SELL,u1,ABC,9.99") == "amount_too_small"


def test_commit_sell_adds_proceeds_of_newest_alive_pending_sell(desk):
    setup(desk, HOLD_10)
    desk.ok("SELL,u1,ABC,20.00")
    desk.prices["ABC"] = 1_100
    desk.ok("SELL,u1,ABC,33.00")
    assert desk.ok("COMMIT_SELL,u1") == {"symbol": "ABC", "shares": 3, "price": "11.00",
                                         "proceeds": "33.00", "cash": "933.00"}
    assert desk.ok("COMMIT_SELL,u1")["cash"] == "953.00"
    assert desk.fails("COMMIT_SELL,u1") == "no_pending_sell"
    assert desk.summary("u1")["holdings"] == {"ABC": 5}


def test_cancel_sell_returns_shares_of_newest_pending_sell(desk):
    setup(desk, HOLD_10)
    desk.ok("SELL,u1,ABC,20.00")
    desk.ok("SELL,u1,ABC,30.00")
    assert desk.ok("CANCEL_SELL,u1") == {"symbol": "ABC", "shares": 3, "price": "10.00",
                                         "holding": 8, "cash": "900.00"}
    assert [p["shares"] for p in desk.summary("u1")["pending_sells"]] == [2]


# --- SET_BUY_AMOUNT / SET_BUY_TRIGGER / CANCEL_SET_BUY ----------------------------------------


def test_set_buy_amount_moves_amount_from_cash_into_reservation(desk):
    desk.ok("ADD,u1,100.00")
    assert desk.ok("SET_BUY_AMOUNT,u1,ABC,40.00") == {
        "symbol": "ABC", "reserved": "40.00", "trigger_price": None, "cash": "60.00"}
    assert desk.summary("u1")["buy_triggers"] == [
        {"symbol": "ABC", "reserved": "40.00", "trigger_price": None}]
    assert desk.asked == []  # needs no quote


def test_set_buy_amount_returns_the_old_reservation_before_checking_cash(desk):
    desk.ok("ADD,u1,100.00")
    desk.ok("SET_BUY_AMOUNT,u1,ABC,80.00")
    assert desk.ok("SET_BUY_AMOUNT,u1,ABC,100.00")["cash"] == "0.00"
    assert desk.ok("SET_BUY_AMOUNT,u1,ABC,30.00")["cash"] == "70.00"


def test_set_buy_amount_keeps_the_trigger_price(desk):
    desk.ok("ADD,u1,100.00")
    desk.ok("SET_BUY_AMOUNT,u1,ABC,50.00")
    desk.ok("SET_BUY_TRIGGER,u1,ABC,9.00")
    assert desk.ok("SET_BUY_AMOUNT,u1,ABC,60.00") == {
        "symbol": "ABC", "reserved": "60.00", "trigger_price": "9.00", "cash": "40.00"}
    assert desk.engine.armed_symbols() == {"ABC": "u1"}


def test_set_buy_amount_below_the_trigger_price_fails_and_keeps_the_reservation(desk):
    desk.ok("ADD,u1,100.00")
    desk.ok("SET_BUY_AMOUNT,u1,ABC,50.00")
    desk.ok("SET_BUY_TRIGGER,u1,ABC,40.00")
    assert desk.fails("SET_BUY_AMOUNT,u1,ABC,39.99") == "amount_too_small"
    assert desk.ok("SET_BUY_AMOUNT,u1,ABC,40.00")["cash"] == "60.00"


def test_set_buy_trigger_without_reservation_fails_no_buy_amount(desk):
    desk.ok("ADD,u1,100.00")
    assert desk.fails("SET_BUY_TRIGGER,u1,ABC,5.00") == "no_buy_amount"
    assert desk.engine.armed_symbols() == {}


def test_set_buy_trigger_needs_a_reservation_of_at_least_one_share_at_its_price(desk):
    desk.ok("ADD,u1,100.00")
    desk.ok("SET_BUY_AMOUNT,u1,ABC,20.00")
    assert desk.fails("SET_BUY_TRIGGER,u1,ABC,20.01") == "amount_too_small"
    assert desk.ok("SET_BUY_TRIGGER,u1,ABC,20.00")["trigger_price"] == "20.00"


def test_set_buy_trigger_arms_and_replaces_the_price(desk):
    desk.ok("ADD,u1,100.00")
    desk.ok("SET_BUY_AMOUNT,u1,ABC,20.00")
    assert desk.ok("SET_BUY_TRIGGER,u1,ABC,9.00") == {
        "symbol": "ABC", "reserved": "20.00", "trigger_price": "9.00", "cash": "80.00"}
    assert desk.engine.armed_symbols() == {"ABC": "u1"}
    desk.ok("SET_BUY_TRIGGER,u1,ABC,8.00")
    assert desk.summary("u1")["buy_triggers"] == [
        {"symbol": "ABC", "reserved": "20.00", "trigger_price": "8.00"}]
    assert desk.asked == []


def test_cancel_set_buy_returns_the_reservation_and_disarms(desk):
    desk.ok("ADD,u1,100.00")
    desk.ok("SET_BUY_AMOUNT,u1,ABC,20.00")
    desk.ok("SET_BUY_TRIGGER,u1,ABC,9.00")
    assert desk.ok("CANCEL_SET_BUY,u1,ABC") == {"symbol": "ABC", "released": "20.00",
                                                "cash": "100.00"}
    assert desk.engine.armed_symbols() == {}
    assert desk.summary("u1")["buy_triggers"] == []
    assert desk.fails("CANCEL_SET_BUY,u1,ABC") == "no_buy_amount"


# --- SET_SELL_AMOUNT / SET_SELL_TRIGGER / CANCEL_SET_SELL -------------------------------------


def test_set_sell_amount_without_shares_fails_no_holding(desk):
    desk.ok("ADD,u1,100.00")
    assert desk.fails("SET_SELL_AMOUNT,u1,ABC,10.00") == "no_holding"


def test_set_sell_amount_sets_and_replaces_the_amount_without_reserving(desk):
    setup(desk, HOLD_10)
    desk.asked.clear()
    assert desk.ok("SET_SELL_AMOUNT,u1,ABC,50.00") == {
        "symbol": "ABC", "amount": "50.00", "trigger_price": None, "reserved_shares": 0,
        "holding": 10, "cash": "900.00"}
    desk.ok("SET_SELL_AMOUNT,u1,ABC,70.00")
    assert desk.summary("u1")["sell_triggers"] == [
        {"symbol": "ABC", "amount": "70.00", "trigger_price": None, "reserved_shares": 0}]
    assert desk.engine.armed_symbols() == {}
    assert desk.asked == []


def test_set_sell_amount_rearms_at_trigger_price(desk):
    setup(desk, HOLD_10)
    desk.ok("SET_SELL_AMOUNT,u1,ABC,50.00")
    desk.ok("SET_SELL_TRIGGER,u1,ABC,20.00")  # 2 shares reserved
    assert desk.ok("SET_SELL_AMOUNT,u1,ABC,100.00") == {
        "symbol": "ABC", "amount": "100.00", "trigger_price": "20.00", "reserved_shares": 5,
        "holding": 5, "cash": "900.00"}
    assert desk.engine.armed_symbols() == {"ABC": "u1"}


def test_set_sell_amount_counts_reserved_shares_as_held(desk):
    setup(desk, HOLD_10)
    desk.ok("SET_SELL_AMOUNT,u1,ABC,100.00")
    desk.ok("SET_SELL_TRIGGER,u1,ABC,10.00")  # all 10 reserved, none free
    result = desk.ok("SET_SELL_AMOUNT,u1,ABC,40.00")
    assert (result["reserved_shares"], result["holding"]) == (4, 6)


def test_set_sell_amount_rearm_failure_keeps_the_old_reservation(desk):
    setup(desk, HOLD_10)
    desk.ok("SET_SELL_AMOUNT,u1,ABC,50.00")
    desk.ok("SET_SELL_TRIGGER,u1,ABC,20.00")
    assert desk.fails("SET_SELL_AMOUNT,u1,ABC,19.99") == "amount_too_small"  # 0 shares
    assert desk.fails("SET_SELL_AMOUNT,u1,ABC,220.00") == "insufficient_shares"  # 11 > 10
    assert desk.summary("u1")["sell_triggers"] == [
        {"symbol": "ABC", "amount": "50.00", "trigger_price": "20.00", "reserved_shares": 2}]


def test_set_sell_trigger_without_amount_fails_no_sell_amount(desk):
    setup(desk, HOLD_10)
    assert desk.fails("SET_SELL_TRIGGER,u1,ABC,10.00") == "no_sell_amount"


def test_set_sell_trigger_reserves_amount_over_price_shares_and_arms(desk):
    setup(desk, HOLD_10)
    desk.ok("SET_SELL_AMOUNT,u1,ABC,50.00")
    desk.asked.clear()
    assert desk.ok("SET_SELL_TRIGGER,u1,ABC,15.00") == {
        "symbol": "ABC", "amount": "50.00", "trigger_price": "15.00", "reserved_shares": 3,
        "holding": 7, "cash": "900.00"}
    assert desk.summary("u1")["holdings"] == {"ABC": 7}
    assert desk.engine.armed_symbols() == {"ABC": "u1"}
    assert desk.asked == []


def test_set_sell_trigger_returns_reserved_shares_first(desk):
    setup(desk, HOLD_10)
    desk.ok("SET_SELL_AMOUNT,u1,ABC,100.00")
    desk.ok("SET_SELL_TRIGGER,u1,ABC,10.00")  # all 10 reserved
    assert desk.ok("SET_SELL_TRIGGER,u1,ABC,10.00")["reserved_shares"] == 10
    result = desk.ok("SET_SELL_TRIGGER,u1,ABC,25.00")
    assert (result["reserved_shares"], result["holding"]) == (4, 6)


def test_set_sell_trigger_needing_more_shares_than_held_fails(desk):
    setup(desk, HOLD_10)
    desk.ok("SET_SELL_AMOUNT,u1,ABC,50.00")
    assert desk.fails("SET_SELL_TRIGGER,u1,ABC,4.50") == "insufficient_shares"  # 11 shares
    assert desk.fails("SET_SELL_TRIGGER,u1,ABC,50.01") == "amount_too_small"  # 0 shares
    assert desk.engine.armed_symbols() == {}


def test_cancel_set_sell_returns_reserved_shares_and_disarms(desk):
    setup(desk, HOLD_10)
    desk.ok("SET_SELL_AMOUNT,u1,ABC,50.00")
    desk.ok("SET_SELL_TRIGGER,u1,ABC,10.00")
    assert desk.ok("CANCEL_SET_SELL,u1,ABC") == {
        "symbol": "ABC", "released_shares": 5, "holding": 10, "cash": "900.00"}
    assert desk.engine.armed_symbols() == {}
    assert desk.summary("u1")["sell_triggers"] == []
    assert desk.fails("CANCEL_SET_SELL,u1,ABC") == "no_sell_amount"


def test_cancel_set_sell_of_an_unarmed_amount_removes_it(desk):
    setup(desk, HOLD_10)
    desk.ok("SET_SELL_AMOUNT,u1,ABC,50.00")
    assert desk.ok("CANCEL_SET_SELL,u1,ABC")["released_shares"] == 0
    assert desk.summary("u1")["sell_triggers"] == []


# --- DISPLAY_SUMMARY ----------------------------------------------------------------------------


def test_summary_shows_cash_free_holdings_pending_entries_and_both_trigger_tables(desk):
    setup(desk, HOLD_10 + [
        "BUY,u1,XY,60.00",  # pending: 2 XY at 25.00
        "SELL,u1,ABC,30.00",  # pending: 3 ABC
        "SET_BUY_AMOUNT,u1,XY,50.00",
        "SET_BUY_TRIGGER,u1,XY,20.00",
        "SET_SELL_AMOUNT,u1,ABC,40.00",
        "SET_SELL_TRIGGER,u1,ABC,20.00",  # 2 ABC reserved
        "ADD,u1,0.01",
    ])
    summary = desk.summary("u1")
    transactions = summary.pop("transactions")
    assert summary == {
        "user": "u1",
        "cash": "800.01",  # 1000 - 100 - 50 (held by the BUY) - 50 (reserved) + 0.01
        "holdings": {"ABC": 5},
        "pending_buys": [{"txn": 4, "symbol": "XY", "shares": 2, "price": "25.00",
                          "expires_at": T0 + MINUTE}],
        "pending_sells": [{"txn": 5, "symbol": "ABC", "shares": 3, "price": "10.00",
                           "expires_at": T0 + MINUTE}],
        "buy_triggers": [{"symbol": "XY", "reserved": "50.00", "trigger_price": "20.00"}],
        "sell_triggers": [{"symbol": "ABC", "amount": "40.00", "trigger_price": "20.00",
                           "reserved_shares": 2}],
        "transactions_total": 8,
    }
    assert transactions[0] == {"txn": 10, "time": T0, "kind": "add", "symbol": None,
                               "shares": 0, "price": None, "cash_delta": "0.01"}


def test_summary_taken_between_changes_always_shows_the_current_state(desk):
    setup(desk, HOLD_10)
    steps = [
        ("SET_BUY_AMOUNT,u1,XY,50.00", "buy_triggers", [("XY", "50.00", None)]),
        ("SET_BUY_AMOUNT,u1,XY,60.00", "buy_triggers", [("XY", "60.00", None)]),
        ("SET_BUY_TRIGGER,u1,XY,20.00", "buy_triggers", [("XY", "60.00", "20.00")]),
        ("SET_SELL_AMOUNT,u1,ABC,40.00", "sell_triggers", [("ABC", "40.00", None, 0)]),
        ("SET_SELL_AMOUNT,u1,ABC,30.00", "sell_triggers", [("ABC", "30.00", None, 0)]),
        ("SET_SELL_TRIGGER,u1,ABC,10.00", "sell_triggers", [("ABC", "30.00", "10.00", 3)]),
        ("SET_SELL_AMOUNT,u1,ABC,50.00", "sell_triggers", [("ABC", "50.00", "10.00", 5)]),
        ("SET_SELL_TRIGGER,u1,ABC,25.00", "sell_triggers", [("ABC", "50.00", "25.00", 2)]),
        ("CANCEL_SET_SELL,u1,ABC", "sell_triggers", []),
        ("CANCEL_SET_BUY,u1,XY", "buy_triggers", []),
        ("SET_BUY_AMOUNT,u1,ABC,30.00", "buy_triggers", [("ABC", "30.00", None)]),
    ]
    for line, table, rows in steps:
        desk.summary("u1")
        desk.ok(line)
        shown = desk.summary("u1")
        assert [tuple(t.values())[:4] for t in shown[table]] == rows, line
        assert shown == summary(desk.engine.accounts["u1"])  # rendered afresh
    desk.ok("SET_BUY_TRIGGER,u1,ABC,10.00")
    desk.ok("SET_SELL_AMOUNT,u1,ABC,20.00")
    desk.ok("SET_SELL_TRIGGER,u1,ABC,20.00")
    desk.summary("u1")
    desk.sweep("ABC", 1_000)  # fills the buy trigger
    desk.sweep("ABC", 2_000)  # fills the sell trigger
    shown = desk.summary("u1")
    assert (shown["buy_triggers"], shown["sell_triggers"]) == ([], [])
    assert shown["transactions"][0]["kind"] == "trigger_fill"
    assert shown == summary(desk.engine.accounts["u1"])


def test_summary_holdings_follow_every_change_of_shares(desk):
    desk.prices["AA"] = 1_000
    setup(desk, HOLD_10)
    steps = [
        ("BUY,u1,XY,50.00", {"ABC": 10}),  # pending: not held yet
        ("COMMIT_BUY,u1", {"ABC": 10, "XY": 2}),  # a new symbol
        ("BUY,u1,ABC,20.00", {"ABC": 10, "XY": 2}),
        ("COMMIT_BUY,u1", {"ABC": 12, "XY": 2}),  # the same symbols, a new count
        ("SELL,u1,XY,50.00", {"ABC": 12}),  # 0 free XY: not shown
        ("CANCEL_SELL,u1", {"ABC": 12, "XY": 2}),
        ("SET_SELL_AMOUNT,u1,ABC,40.00", {"ABC": 12, "XY": 2}),
        ("SET_SELL_TRIGGER,u1,ABC,20.00", {"ABC": 10, "XY": 2}),  # 2 ABC reserved
        ("CANCEL_SET_SELL,u1,ABC", {"ABC": 12, "XY": 2}),
        ("BUY,u1,AA,10.00", {"ABC": 12, "XY": 2}),
        ("COMMIT_BUY,u1", {"AA": 1, "ABC": 12, "XY": 2}),  # sorted by symbol
    ]
    for line, holdings in steps:
        desk.summary("u1")
        desk.ok(line)
        shown = desk.summary("u1")
        assert list(shown["holdings"].items()) == list(holdings.items()), line
        assert shown == summary(desk.engine.accounts["u1"])  # rendered afresh
    desk.ok("SET_BUY_AMOUNT,u1,XY,50.00")
    desk.ok("SET_BUY_TRIGGER,u1,XY,25.00")
    desk.summary("u1")
    desk.sweep("XY", 2_500)  # fills the buy trigger: 2 more XY
    assert desk.summary("u1")["holdings"] == {"AA": 1, "ABC": 12, "XY": 4}


def test_a_summary_keeps_its_holdings_when_later_ones_change(desk):
    setup(desk, HOLD_10)
    first = desk.summary("u1")
    setup(desk, ["BUY,u1,ABC,20.00", "COMMIT_BUY,u1"])
    assert desk.summary("u1")["holdings"] == {"ABC": 12}
    assert first["holdings"] == {"ABC": 10}


def test_summary_transactions_follow_each_new_record(desk):
    desk.ok("ADD,u1,1.00")
    for count in (1, 3, 19, 20, 21, 45):
        while len(desk.engine.accounts["u1"].transactions) < count:
            desk.ok("ADD,u1,0.01")
        shown = desk.summary("u1")["transactions"]
        expected = [r[0] for r in reversed(desk.engine.accounts["u1"].transactions)][:20]
        assert [t["txn"] for t in shown] == expected


def test_every_change_of_cash_or_shares_is_one_transaction_record(desk):
    setup(desk, [
        "ADD,u1,1000.00",  # 1
        "BUY,u1,ABC,20.00", "COMMIT_BUY,u1",  # 2, 3
        "BUY,u1,ABC,10.00", "CANCEL_BUY,u1",  # 4, 5
        "SELL,u1,ABC,10.00", "COMMIT_SELL,u1",  # 6, 7
        "SELL,u1,ABC,10.00", "CANCEL_SELL,u1",  # 8, 9
        "SET_BUY_AMOUNT,u1,ABC,30.00", "SET_BUY_AMOUNT,u1,ABC,40.00",  # 10, 11
        "CANCEL_SET_BUY,u1,ABC",  # 12
        "SET_SELL_AMOUNT,u1,ABC,10.00", "SET_SELL_TRIGGER,u1,ABC,10.00",  # 13, 14
        "CANCEL_SET_SELL,u1,ABC",  # 15
        "QUOTE,u1,ABC", "DISPLAY_SUMMARY,u1",  # reads: no record
    ])
    records = [(t["txn"], t["kind"], t["symbol"], t["shares"], t["price"], t["cash_delta"])
               for t in reversed(desk.summary("u1")["transactions"])]
    assert records == [
        (1, "add", None, 0, None, "1000.00"),
        (2, "buy_reserve", "ABC", 2, "10.00", "-20.00"),
        (3, "buy_commit", "ABC", 2, "10.00", "0.00"),
        (4, "buy_reserve", "ABC", 1, "10.00", "-10.00"),
        (5, "buy_release", "ABC", 1, "10.00", "10.00"),
        (6, "sell_reserve", "ABC", 1, "10.00", "0.00"),
        (7, "sell_commit", "ABC", 1, "10.00", "10.00"),
        (8, "sell_reserve", "ABC", 1, "10.00", "0.00"),
        (9, "sell_release", "ABC", 1, "10.00", "0.00"),
        (10, "trigger_reserve", "ABC", 0, None, "-30.00"),
        (11, "trigger_release", "ABC", 0, None, "30.00"),
        (11, "trigger_reserve", "ABC", 0, None, "-40.00"),
        (12, "trigger_release", "ABC", 0, None, "40.00"),
        (14, "trigger_reserve", "ABC", 1, "10.00", "0.00"),
        (15, "trigger_release", "ABC", 1, "10.00", "0.00"),
    ]


def test_summary_lists_the_20_newest_transactions_newest_first_and_the_total(desk):
    for _ in range(25):
        desk.ok("ADD,u1,1.00")
    summary = desk.summary("u1")
    assert [t["txn"] for t in summary["transactions"]] == list(range(25, 5, -1))
    assert SUMMARY_TRANSACTIONS == 20 and summary["transactions_total"] == 25


def test_summary_before_txn_lists_only_older_transactions(desk):
    for _ in range(25):
        desk.ok("ADD,u1,1.00")
    older = desk.ok("DISPLAY_SUMMARY,u1,10")
    assert [t["txn"] for t in older["transactions"]] == list(range(9, 0, -1))
    assert older["transactions_total"] == 25
    assert [t["txn"] for t in desk.ok("DISPLAY_SUMMARY,u1,24")["transactions"]] == list(
        range(23, 3, -1))


def test_summary_leaves_out_expired_pending_entries_and_sold_out_holdings(desk):
    setup(desk, HOLD_10)
    desk.ok("SELL,u1,ABC,100.00")
    desk.ok("COMMIT_SELL,u1")
    desk.ok("BUY,u1,ABC,10.00")
    desk.advance(MINUTE, timer=False)
    summary = desk.summary("u1")
    assert (summary["holdings"], summary["pending_buys"]) == ({}, [])


# --- DUMPLOG and rejected lines ---------------------------------------------------------------


def test_dumplog_of_a_user_is_audited_and_asks_the_caller_to_write_it(desk):
    desk.ok("ADD,u1,1.00")
    assert desk.run("[7] DUMPLOG,u1,u1.xml") == DumpRequest(7, "u1", "u1.xml")
    (event,) = desk.events_of(7)
    assert (event.kind, event.user, event.command, event.filename) == (
        USER_COMMAND, "u1", "DUMPLOG", "u1.xml")


def test_dumplog_of_all_users_needs_no_account(desk):
    assert desk.run("[8] DUMPLOG,./testLOG") == DumpRequest(8, None, "./testLOG")
    (event,) = desk.events_of(8)
    assert (event.kind, event.user, event.command, event.filename) == (
        USER_COMMAND, None, "DUMPLOG", "./testLOG")


@pytest.mark.parametrize("user", ["u1", "u9", None])
def test_rejected_line_is_audited_without_its_bad_field_and_changes_nothing(desk, user):
    desk.ok("ADD,u1,1.00")
    reply = desk.engine.reject("BUY", user, 9, desk.now, ErrorCode.BAD_ARGUMENT,
                               "amount must be ..., got '-5'")
    desk.drain()
    assert reply == Reply(9, "BUY", False, None, ErrorCode.BAD_ARGUMENT,
                          "amount must be ..., got '-5'")
    command, err = desk.events_of(9)
    assert (command.kind, command.user, command.command, command.symbol, command.funds) == (
        USER_COMMAND, user, "BUY", None, None)
    assert (err.kind, err.message) == (ERROR_EVENT, "amount must be ..., got '-5'")
    assert desk.engine.accounts["u1"].last_txn == 1


def test_rejected_line_with_no_command_name_is_not_audited(desk):
    reply = desk.engine.reject(None, None, 3, desk.now, ErrorCode.UNKNOWN_COMMAND, "unknown")
    assert reply.code is ErrorCode.UNKNOWN_COMMAND
    assert not desk.engine.has_effects()


# --- expiry -------------------------------------------------------------------------------------


def test_pending_buy_expires_after_60_s_and_cash_returns(desk):
    desk.ok("ADD,u1,100.00")
    desk.ok("BUY,u1,ABC,50.00")
    assert desk.engine.next_expiry() == T0 + MINUTE
    assert desk.advance(MINUTE - 1) == 0
    assert desk.summary("u1")["cash"] == "50.00"
    assert desk.advance(1) == 1
    summary = desk.summary("u1")
    assert (summary["cash"], summary["pending_buys"]) == ("100.00", [])
    assert desk.engine.next_expiry() is None


def test_pending_sell_expires_after_60_s_and_shares_return(desk):
    setup(desk, HOLD_10)
    desk.ok("SELL,u1,ABC,30.00")
    assert desk.advance(MINUTE) == 1
    summary = desk.summary("u1")
    assert (summary["holdings"], summary["pending_sells"]) == ({"ABC": 10}, [])


def test_pending_entry_is_alive_until_the_last_ms_of_its_60_s(desk):
    desk.ok("ADD,u1,100.00")
    desk.ok("BUY,u1,ABC,50.00")
    desk.ok("BUY,u1,ABC,20.00")
    desk.now += MINUTE - 1
    assert desk.ok("COMMIT_BUY,u1")["shares"] == 2
    desk.now += 1
    assert desk.fails("COMMIT_BUY,u1") == "no_pending_buy"


def test_expiry_is_audited_under_the_txn_of_the_buy_at_its_expiry_time(desk):
    desk.ok("ADD,u1,100.00")
    desk.ok("BUY,u1,ABC,50.00")  # txn 2
    desk.advance(MINUTE + 5_000)
    released = desk.events_of(2)[-1]
    assert (released.kind, released.action, released.funds, released.timestamp) == (
        ACCOUNT_TRANSACTION, "add", 5_000, T0 + MINUTE)
    assert desk.engine.accounts["u1"].transactions[-1] == TxRecord(
        2, T0 + MINUTE, "buy_release", "ABC", 5, 1_000, 5_000)


def test_expiry_pushes_pending_expired_to_the_user(desk):
    setup(desk, HOLD_10)
    desk.ok("SELL,u1,ABC,30.00")  # txn 4
    desk.ok("BUY,u1,XY,25.00")  # txn 5
    desk.advance(MINUTE)
    assert desk.pushes == [
        ("u1", PushedEvent(PENDING_EXPIRED, {"user": "u1", "side": "buy", "txn": 5,
                                             "symbol": "XY", "shares": 1, "price": "25.00",
                                             "cash": "900.00"})),
        ("u1", PushedEvent(PENDING_EXPIRED, {"user": "u1", "side": "sell", "txn": 4,
                                             "symbol": "ABC", "shares": 3, "price": "10.00",
                                             "cash": "900.00"})),
    ]


def test_expiry_noticed_by_a_later_command_is_dated_at_expiry_time(desk):
    desk.ok("ADD,u1,100.00")
    desk.ok("BUY,u1,ABC,50.00")
    desk.advance(10 * MINUTE, timer=False)
    desk.ok("DISPLAY_SUMMARY,u1")
    assert desk.engine.accounts["u1"].transactions[-1][1] == T0 + MINUTE
    assert [name for _, p in desk.pushes for name in [p.event]] == [PENDING_EXPIRED]
    assert desk.advance(0) == 0  # the timer finds nothing left to do


@pytest.mark.parametrize("line", ["SELL,u1,ABC,30.00", "BUY,u1,ABC,30.00"])
def test_lone_pending_entry_is_released_by_the_next_command_without_the_timer(desk, line):
    setup(desk, HOLD_10)
    desk.advance(MINUTE, timer=False)
    desk.summary("u1")  # nothing pending now
    desk.ok(line)
    desk.advance(MINUTE, timer=False)
    summary = desk.summary("u1")
    assert (summary["pending_buys"], summary["pending_sells"]) == ([], [])
    assert (summary["cash"], summary["holdings"]) == ("900.00", {"ABC": 10})


def test_settled_entry_does_not_expire(desk):
    desk.ok("ADD,u1,100.00")
    desk.ok("BUY,u1,ABC,50.00")
    desk.ok("COMMIT_BUY,u1")
    assert desk.advance(MINUTE) == 0
    assert desk.pushes == []


# --- triggers -----------------------------------------------------------------------------------


def arm_buy(desk: Desk) -> None:
    setup(desk, ["ADD,u1,100.00", "SET_BUY_AMOUNT,u1,ABC,50.00", "SET_BUY_TRIGGER,u1,ABC,12.00"])


def arm_sell(desk: Desk) -> None:
    setup(desk, HOLD_10 + ["SET_SELL_AMOUNT,u1,ABC,50.00", "SET_SELL_TRIGGER,u1,ABC,20.00"])


def test_buy_trigger_fires_at_or_below_price_and_refunds_unspent(desk):
    arm_buy(desk)
    assert desk.sweep("ABC", 1_201) == 0
    assert desk.sweep("ABC", 1_200) == 1
    summary = desk.summary("u1")
    # 50.00 // 12.00 = 4 shares for 48.00; 2.00 comes back to the 50.00 left in cash
    assert (summary["cash"], summary["holdings"], summary["buy_triggers"]) == (
        "52.00", {"ABC": 4}, [])
    assert desk.engine.armed_symbols() == {}


def test_buy_trigger_below_its_price_buys_at_the_quote(desk):
    arm_buy(desk)
    assert desk.sweep("ABC", 700) == 1
    summary = desk.summary("u1")
    assert (summary["cash"], summary["holdings"]) == ("51.00", {"ABC": 7})


def test_sell_trigger_fires_at_or_above_price_and_adds_proceeds(desk):
    arm_sell(desk)  # 2 ABC reserved at 20.00, 8 free, cash 900.00
    assert desk.sweep("ABC", 1_999) == 0
    assert desk.sweep("ABC", 2_500) == 1
    summary = desk.summary("u1")
    assert (summary["cash"], summary["holdings"], summary["sell_triggers"]) == (
        "950.00", {"ABC": 8}, [])
    assert desk.engine.armed_symbols() == {}


def test_trigger_repriced_after_a_sweep_that_crossed_nothing_fires_at_its_new_price(desk):
    arm_buy(desk)  # buy at or below 12.00
    assert desk.sweep("ABC", 1_300) == 0
    desk.ok("SET_BUY_TRIGGER,u1,ABC,13.50")
    assert desk.sweep("ABC", 1_300) == 1
    setup(desk, ["ADD,u2,1000.00", "BUY,u2,ABC,100.00", "COMMIT_BUY,u2",
                 "SET_SELL_AMOUNT,u2,ABC,30.00", "SET_SELL_TRIGGER,u2,ABC,15.00"])
    assert desk.sweep("ABC", 1_400) == 0
    desk.ok("SET_SELL_TRIGGER,u2,ABC,13.00")
    assert desk.sweep("ABC", 1_400) == 1
    setup(desk, ["SET_BUY_AMOUNT,u2,ABC,50.00", "SET_BUY_TRIGGER,u2,ABC,9.00"])
    assert desk.sweep("ABC", 950) == 0
    setup(desk, ["ADD,u3,100.00", "SET_BUY_AMOUNT,u3,ABC,50.00", "SET_BUY_TRIGGER,u3,ABC,9.60"])
    assert desk.engine.armed_symbols() == {"ABC": "u2"}
    assert desk.sweep("ABC", 950) == 1  # u3's new trigger, armed after the last sweep
    assert desk.engine.armed_symbols() == {"ABC": "u2"}


def test_trigger_without_a_price_never_fires(desk):
    setup(desk, HOLD_10 + ["SET_BUY_AMOUNT,u1,ABC,50.00", "SET_SELL_AMOUNT,u1,ABC,50.00"])
    assert desk.engine.armed_symbols() == {}
    assert desk.engine.fire_triggers(desk.quote("ABC", "u1", 1), desk.now, desk.txns()) == []


def test_quote_older_than_60_s_fires_nothing(desk):
    arm_buy(desk)
    old = PriceQuote("ABC", 100, desk.now - MINUTE, "k", "u1")
    assert desk.engine.fire_triggers(old, desk.now, desk.txns()) == []


def test_firing_gets_a_new_txn_and_is_audited_as_a_system_event(desk):
    arm_buy(desk)
    desk.sweep("ABC", 1_200)
    fired_txn = desk.txn
    quote, system, refund = desk.events_of(fired_txn)
    assert (quote.kind, quote.price, quote.cryptokey) == (QUOTE_SERVER, 1_200,
                                                          f"key-ABC-{desk.now}")
    assert (system.kind, system.command, system.user, system.symbol, system.funds) == (
        SYSTEM_EVENT, "SET_BUY_TRIGGER", "u1", "ABC", 4_800)
    assert (refund.kind, refund.action, refund.funds) == (ACCOUNT_TRANSACTION, "add", 200)
    assert desk.engine.accounts["u1"].transactions[-1] == TxRecord(
        fired_txn, desk.now, "trigger_fill", "ABC", 4, 1_200, 200)


def test_fired_sell_trigger_is_audited_with_its_proceeds(desk):
    arm_sell(desk)
    desk.fresh = False
    desk.sweep("ABC", 2_500)
    assert [(e.kind, e.command, e.funds, e.action) for e in desk.events_of(desk.txn)] == [
        (SYSTEM_EVENT, "SET_SELL_TRIGGER", 5_000, None),
        (ACCOUNT_TRANSACTION, None, 5_000, "add")]


def test_firing_pushes_trigger_fired_to_the_owner(desk):
    arm_buy(desk)
    desk.sweep("ABC", 1_200)
    assert desk.pushes == [("u1", PushedEvent(TRIGGER_FIRED, {
        "user": "u1", "txn": desk.txn, "side": "buy", "symbol": "ABC", "shares": 4,
        "price": "12.00", "amount": "48.00", "refund": "2.00", "cash": "52.00"}))]


def test_one_quote_fires_the_triggers_of_every_user_on_its_symbol(desk):
    arm_buy(desk)
    setup(desk, ["ADD,u0,100.00", "SET_BUY_AMOUNT,u0,ABC,30.00", "SET_BUY_TRIGGER,u0,ABC,11.00"])
    assert desk.engine.armed_symbols() == {"ABC": "u0"}  # one owner to ask the quote server for
    first_firing = desk.txn + 1
    assert desk.sweep("ABC", 1_000) == 2
    quote_events = [e for e in desk.events if e.kind == QUOTE_SERVER and e.txn >= first_firing]
    assert len(quote_events) == 1  # a fresh quote is audited once, under the first firing


def test_sweep_quote_that_fires_nothing_is_audited_on_its_own(desk):
    arm_buy(desk)
    quote = desk.quote("ABC", "u1", 5_000)
    assert desk.engine.fire_triggers(quote, desk.now, desk.txns()) == []
    desk.engine.audit_quote_hit(quote, desk.now, 99)
    desk.drain()
    (event,) = desk.events_of(99)
    assert (event.kind, event.user, event.price) == (QUOTE_SERVER, "u1", 5_000)


# --- audit events -------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "symbol", "funds", "filename"), [
    ("ADD,u1,5.00", None, 500, None),
    ("QUOTE,u1,ABC", "ABC", None, None),
    ("BUY,u1,ABC,20.00", "ABC", 2_000, None),
    ("COMMIT_BUY,u1", None, None, None),
    ("SET_BUY_AMOUNT,u1,XY,1.50", "XY", 150, None),
    ("SET_SELL_TRIGGER,u1,XY,2.50", "XY", 250, None),
    ("CANCEL_SET_SELL,u1,XY", "XY", None, None),
    ("DISPLAY_SUMMARY,u1", None, None, None),
    ("DUMPLOG,u1,log.xml", None, None, "log.xml"),
])
def test_every_command_logs_a_user_command_with_its_fields(desk, line, symbol, funds, filename):
    setup(desk, HOLD_10)
    desk.run(line)
    first = desk.events_of(desk.txn)[0]
    assert (first.kind, first.user, first.command, first.symbol, first.funds, first.filename) == (
        USER_COMMAND, "u1", line.split(",")[0], symbol, funds, filename)
    assert first.server == "shard-1" and first.timestamp == desk.now


AUDIT = [
    # (setup, line, (kind, action, funds) of each event after the userCommand)
    ([], "ADD,u1,5.00", [(ACCOUNT_TRANSACTION, "add", 500)]),
    (["ADD,u1,100.00"], "QUOTE,u1,ABC", [(QUOTE_SERVER, None, None)]),
    (["ADD,u1,100.00"], "BUY,u1,ABC,25.00", [(QUOTE_SERVER, None, None),
                                             (ACCOUNT_TRANSACTION, "remove", 2_000)]),
    (["ADD,u1,100.00", "BUY,u1,ABC,25.00"], "COMMIT_BUY,u1", []),
    (["ADD,u1,100.00", "BUY,u1,ABC,25.00"], "CANCEL_BUY,u1",
     [(ACCOUNT_TRANSACTION, "add", 2_000)]),
    (HOLD_10, "SELL,u1,ABC,25.00", [(QUOTE_SERVER, None, None)]),
    (HOLD_10 + ["SELL,u1,ABC,25.00"], "COMMIT_SELL,u1", [(ACCOUNT_TRANSACTION, "add", 2_000)]),
    (HOLD_10 + ["SELL,u1,ABC,25.00"], "CANCEL_SELL,u1", []),
    (["ADD,u1,100.00"], "SET_BUY_AMOUNT,u1,ABC,30.00", [(ACCOUNT_TRANSACTION, "remove", 3_000)]),
    (["ADD,u1,100.00", "SET_BUY_AMOUNT,u1,ABC,30.00"], "SET_BUY_AMOUNT,u1,ABC,45.00",
     [(ACCOUNT_TRANSACTION, "add", 3_000), (ACCOUNT_TRANSACTION, "remove", 4_500)]),
    (["ADD,u1,100.00", "SET_BUY_AMOUNT,u1,ABC,30.00"], "SET_BUY_TRIGGER,u1,ABC,9.00", []),
    (["ADD,u1,100.00", "SET_BUY_AMOUNT,u1,ABC,30.00"], "CANCEL_SET_BUY,u1,ABC",
     [(ACCOUNT_TRANSACTION, "add", 3_000)]),
    (HOLD_10, "SET_SELL_AMOUNT,u1,ABC,30.00", []),
    (HOLD_10 + ["SET_SELL_AMOUNT,u1,ABC,30.00"], "SET_SELL_TRIGGER,u1,ABC,9.00", []),
    (HOLD_10 + ["SET_SELL_AMOUNT,u1,ABC,30.00", "SET_SELL_TRIGGER,u1,ABC,9.00"],
     "CANCEL_SET_SELL,u1,ABC", []),
    (["ADD,u1,1.00"], "DISPLAY_SUMMARY,u1", []),
    (["ADD,u1,1.00"], "DUMPLOG,u1,f.xml", []),
]


@pytest.mark.parametrize(("lines", "line", "expected"), AUDIT,
                         ids=[f"{line.split(',')[0]}-{i}" for i, (_, line, _) in enumerate(AUDIT)])
def test_audit_events_of_each_command(desk, lines, line, expected):
    setup(desk, lines)
    desk.run(line)
    events = desk.events_of(desk.txn)
    assert events[0].kind == USER_COMMAND
    assert [(e.kind, e.action, e.funds) for e in events[1:]] == expected
    assert [e.seq for e in events] == sorted({e.seq for e in events})  # in order, distinct


def test_replaced_buy_reservation_is_two_account_transactions(desk):
    setup(desk, ["ADD,u1,100.00", "SET_BUY_AMOUNT,u1,ABC,30.00"])
    desk.ok("SET_BUY_AMOUNT,u1,ABC,10.00")
    moves = [(e.action, e.funds) for e in desk.events_of(desk.txn)
             if e.kind == ACCOUNT_TRANSACTION]
    assert moves == [("add", 3_000), ("remove", 1_000)]


def test_error_event_carries_the_command_fields_and_the_message(desk):
    desk.ok("ADD,u1,10.00")
    desk.fails("BUY,u1,XY,20.00")
    _, err = desk.events_of(desk.txn)
    assert (err.kind, err.user, err.command, err.symbol, err.funds) == (
        ERROR_EVENT, "u1", "BUY", "XY", 2_000)
    assert err.message == "BUY needs 20.00, cash is 10.00"


def test_quote_server_hit_logs_its_price_time_and_cryptokey_verbatim(desk):
    desk.ok("ADD,u1,1.00")
    hit = PriceQuote("ABC", 1_234, desk.now - 10, "a+b/c=", "u1", fresh=True)
    desk.ok("QUOTE,u1,ABC", quote=hit)
    event = desk.events_of(desk.txn)[1]
    assert (event.kind, event.user, event.symbol, event.price, event.quote_time,
            event.cryptokey) == (QUOTE_SERVER, "u1", "ABC", 1_234, desk.now - 10, "a+b/c=")


def test_cached_quote_logs_a_debug_event_naming_price_time_and_cryptokey(desk):
    desk.ok("ADD,u1,100.00")
    cached = PriceQuote("ABC", 1_234, desk.now - 10, "a+b/c=", "u0")
    desk.ok("BUY,u1,ABC,50.00", quote=cached)
    event = desk.events_of(desk.txn)[1]
    assert (event.kind, event.user, event.command, event.symbol) == (
        DEBUG_EVENT, "u1", "BUY", "ABC")
    assert event.message == (f"cached quote ABC 12.34 quoteServerTime {desk.now - 10} "
                             "cryptokey a+b/c=")


# --- txns and retries -------------------------------------------------------------------------


def test_retry_with_same_txn_and_line_is_replayed_not_applied(desk):
    desk.ok("ADD,u1,100.00")
    first = desk.run("[5] BUY,u1,ABC,20.00")
    before = desk.summary("u1")
    again = desk.run("[5] buy , u1,ABC,20")  # the same command line, written differently
    assert again.replayed and dataclasses.replace(again, replayed=False) == first
    assert '"replayed":true' in again.to_json()
    assert desk.summary("u1") == before
    assert desk.kinds_of(5).count(USER_COMMAND) == 1


def test_failed_command_is_stored_and_replayed_too(desk):
    desk.ok("ADD,u1,10.00")
    first = desk.run("[5] COMMIT_BUY,u1")
    desk.ok("BUY,u1,ABC,10.00")
    again = desk.run("[5] COMMIT_BUY,u1")
    assert again.replayed and (again.code, again.message) == (first.code, first.message)


def test_reused_txn_with_other_line_is_stale(desk):
    desk.ok("ADD,u1,100.00")
    desk.run("[5] BUY,u1,ABC,20.00")
    before = desk.summary("u1")
    assert desk.fails("[5] BUY,u1,ABC,30.00") == "stale_txn"
    assert desk.fails("[4] ADD,u1,1.00") == "stale_txn"
    assert desk.summary("u1") == before
    assert desk.asked == [NeedQuote("ABC", "u1")]  # no quote for a stale command


def test_stale_txn_is_audited_and_does_not_advance_the_txn(desk):
    desk.ok("ADD,u1,100.00")
    desk.run("[5] ADD,u1,1.00")
    desk.run("[3] ADD,u1,2.00")
    assert desk.kinds_of(3) == [USER_COMMAND, ERROR_EVENT]
    assert desk.engine.accounts["u1"].last_txn == 5
    assert desk.run("[5] ADD,u1,1.00").replayed


def test_only_the_16_newest_state_changing_replies_are_kept(desk):
    for _ in range(17):
        desk.ok("ADD,u1,1.00")
    assert desk.fails("[1] ADD,u1,1.00") == "stale_txn"
    assert desk.run("[2] ADD,u1,1.00").replayed


def test_reads_are_never_stored_and_run_again(desk):
    desk.ok("ADD,u1,1.00")
    desk.run("[10] ADD,u1,1.00")
    assert desk.ok("[3] QUOTE,u1,ABC")["price"] == "10.00"
    assert desk.ok("[3] DISPLAY_SUMMARY,u1")["cash"] == "2.00"
    desk.prices["ABC"] = 1_100
    assert not desk.run("[3] QUOTE,u1,ABC").replayed
    assert desk.ok("[3] QUOTE,u1,ABC")["price"] == "11.00"
    assert desk.engine.accounts["u1"].last_txn == 10


def test_replay_survives_reloading_the_account_from_the_store(desk):
    desk.ok("ADD,u1,100.00")
    first = desk.run("[5] BUY,u1,ABC,20.00")
    fresh = Engine("shard-2")
    fresh.load(desk.reloaded("u1"))
    again = fresh.execute(c.Buy("u1", "ABC", 2_000, 5), desk.now)
    assert again.replayed and again.result == first.result


# --- results clients rely on ------------------------------------------------------------------


@pytest.mark.parametrize(("lines", "line", "keys"), [
    ([], "ADD,u1,1.00", {"user", "amount", "cash"}),
    (["ADD,u1,100.00"], "BUY,u1,ABC,10.00",
     {"symbol", "shares", "price", "cost", "expires_at", "cash"}),
    (["ADD,u1,100.00", "BUY,u1,ABC,10.00"], "COMMIT_BUY,u1",
     {"symbol", "shares", "price", "cost", "holding", "cash"}),
    (["ADD,u1,100.00", "BUY,u1,ABC,10.00"], "CANCEL_BUY,u1",
     {"symbol", "shares", "price", "cost", "cash"}),
    (HOLD_10, "SELL,u1,ABC,10.00",
     {"symbol", "shares", "price", "proceeds", "expires_at", "holding", "cash"}),
    (HOLD_10 + ["SELL,u1,ABC,10.00"], "COMMIT_SELL,u1",
     {"symbol", "shares", "price", "proceeds", "cash"}),
    (HOLD_10 + ["SELL,u1,ABC,10.00"], "CANCEL_SELL,u1",
     {"symbol", "shares", "price", "holding", "cash"}),
    (["ADD,u1,100.00"], "SET_BUY_AMOUNT,u1,ABC,10.00",
     {"symbol", "reserved", "trigger_price", "cash"}),
    (HOLD_10, "SET_SELL_AMOUNT,u1,ABC,10.00",
     {"symbol", "amount", "trigger_price", "reserved_shares", "holding", "cash"}),
    (["ADD,u1,100.00", "SET_BUY_AMOUNT,u1,ABC,10.00"], "CANCEL_SET_BUY,u1,ABC",
     {"symbol", "released", "cash"}),
    (HOLD_10 + ["SET_SELL_AMOUNT,u1,ABC,10.00"], "CANCEL_SET_SELL,u1,ABC",
     {"symbol", "released_shares", "holding", "cash"}),
])
def test_state_changing_replies_carry_cash_and_what_changed(desk, lines, line, keys):
    setup(desk, lines)
    result = desk.ok(line)
    assert set(result) == keys


# --- effects --------------------------------------------------------------------------------------


def test_drain_hands_over_events_and_pushes_once(desk):
    engine = desk.engine
    engine.execute(c.Add("u1", 10_000, 1), T0)
    engine.execute(c.Add("u2", 500, 2), T0)
    engine.execute(c.Buy("u1", "ABC", 2_000, 3), T0, PriceQuote("ABC", 1_000, T0, "k", "u1"))
    engine.expire_due(T0 + MINUTE)
    effects = engine.drain()
    assert len(effects.events) == 8 and len(effects.pushes) == 1
    assert not engine.has_effects()
    assert not any(engine.drain())


def test_expire_due_names_the_users_it_released(desk):
    setup(desk, ["ADD,u1,100.00", "ADD,u2,100.00", "BUY,u1,ABC,20.00", "BUY,u2,ABC,20.00"])
    assert desk.engine.expire_due(T0 + MINUTE) == ["u1", "u2"]
    assert desk.engine.expire_due(T0 + MINUTE) == []


def test_expire_due_passes_over_a_busy_user_whose_queue_is_judged_first(desk):
    setup(desk, ["ADD,u1,100.00", "ADD,u2,100.00", "BUY,u1,ABC,20.00", "BUY,u2,ABC,20.00"])
    assert desk.engine.expire_due(T0 + MINUTE, busy={"u1"}) == ["u2"]
    assert len(desk.engine.accounts["u1"].pending_buys) == 1
    assert desk.engine.expire_user("u1", T0 + MINUTE) == 1
    assert desk.engine.accounts["u1"].cash == 10_000


def test_expire_user_releases_nothing_before_the_60_s_are_over(desk):
    setup(desk, ["ADD,u1,100.00", "BUY,u1,ABC,20.00"])
    assert desk.engine.expire_user("u1", T0 + MINUTE - 1) == 0
    assert desk.engine.expire_user("nobody", T0 + MINUTE) == 0


def test_crossings_list_what_a_quote_would_fire_without_firing_it(desk):
    setup(desk, HOLD_10 + ["SET_BUY_AMOUNT,u1,XY,50.00", "SET_BUY_TRIGGER,u1,XY,20.00",
                           "SET_SELL_AMOUNT,u1,ABC,50.00", "SET_SELL_TRIGGER,u1,ABC,20.00"])
    assert desk.engine.crossings(desk.quote("XY", "u1", 2_000), desk.now) == [("u1", True)]
    assert desk.engine.crossings(desk.quote("ABC", "u1", 1_999), desk.now) == []
    assert desk.engine.crossings(desk.quote("ABC", "u1", 2_000), desk.now) == [("u1", False)]
    assert desk.engine.armed_symbols() == {"XY": "u1", "ABC": "u1"}


def test_fire_triggers_fires_no_more_than_the_txns_it_is_given(desk):
    setup(desk, ["ADD,u1,100.00", "ADD,u2,100.00"] + [
        line for u in ("u1", "u2") for line in (f"SET_BUY_AMOUNT,{u},ABC,50.00",
                                                f"SET_BUY_TRIGGER,{u},ABC,20.00")])
    fired = desk.engine.fire_triggers(desk.quote("ABC", "u1", 1_000), desk.now, [900])
    assert fired == ["u1"]
    assert desk.engine.armed_symbols() == {"ABC": "u2"}


def test_loaded_account_keeps_its_expiry_timer_and_armed_triggers(desk):
    setup(desk, HOLD_10 + ["BUY,u1,XY,25.00", "SET_SELL_AMOUNT,u1,ABC,50.00",
                           "SET_SELL_TRIGGER,u1,ABC,20.00"])
    fresh = Engine("shard-2")
    fresh.load(desk.reloaded("u1"))
    assert fresh.next_expiry() == T0 + MINUTE
    assert fresh.armed_symbols() == {"ABC": "u1"}
    assert fresh.expire_due(T0 + MINUTE) == ["u1"]
    assert fresh.accounts["u1"].cash == 90_000


def test_engine_needs_a_txn_on_every_command(desk):
    with pytest.raises(ValueError):
        desk.engine.execute(c.Add("u1", 100), T0)


def test_quote_unavailable_is_one_marker(desk):
    assert quote_unavailable() is quote_unavailable()
