"""client_tui.model.summary: DISPLAY_SUMMARY's result as typed records in integer cents."""

import pytest

from client_tui.model.summary import ReplyShapeError, Summary, cents, parse_summary

RESULT = {
    "user": "alice", "cash": "813.62", "holdings": {"ABC": 5},
    "pending_buys": [{"txn": 5, "symbol": "XYZ", "shares": 10, "price": "5.00",
                      "expires_at": 1_000_060_000}],
    "pending_sells": [{"txn": 9, "symbol": "ABC", "shares": 1, "price": "12.34",
                       "expires_at": 1_000_061_000}],
    "buy_triggers": [{"symbol": "XYZ", "reserved": "100.00", "trigger_price": "4.00"},
                     {"symbol": "QRS", "reserved": "50.00", "trigger_price": None}],
    "sell_triggers": [{"symbol": "ABC", "amount": "20.00", "trigger_price": "15.00",
                       "reserved_shares": 1}],
    "transactions": [
        {"txn": 10001, "time": 1_000_000_500, "kind": "trigger_fill", "symbol": "XYZ",
         "shares": 28, "price": "3.50", "cash_delta": "2.00"},
        {"txn": 1, "time": 1_000_000_000, "kind": "add", "symbol": None, "shares": 0,
         "price": None, "cash_delta": "1000.00"},
    ],
    "transactions_total": 14,
}


def test_money_fields_become_integer_cents():
    s = parse_summary(RESULT)
    assert s.cash == 81362
    assert s.pending_buys[0].price == 500 and s.pending_buys[0].amount == 5000
    assert s.buy_triggers[0].reserved == 10000 and s.buy_triggers[0].trigger_price == 400
    assert s.sell_triggers[0].amount == 2000 and s.sell_triggers[0].reserved_shares == 1


def test_unarmed_trigger_has_no_price():
    assert parse_summary(RESULT).buy_triggers[1].trigger_price is None


def test_pending_orders_know_their_side():
    s = parse_summary(RESULT)
    assert (s.pending_buys[0].side, s.pending_sells[0].side) == ("buy", "sell")


def test_transactions_keep_signed_cash_deltas_and_null_prices():
    first, add = parse_summary(RESULT).transactions
    assert (first.txn, first.kind, first.shares, first.price, first.cash_delta) == (
        10001, "trigger_fill", 28, 350, 200)
    assert add.symbol is None and add.price is None and add.cash_delta == 100000


def test_negative_money_parses():
    assert cents("-98.72") == -9872


@pytest.mark.parametrize("bad", ["12.345", "1e3", 12.34, None, "--1.00", ""])
def test_money_that_is_not_two_decimal_dollars_is_a_shape_error(bad):
    with pytest.raises(ReplyShapeError):
        cents(bad)


def test_a_missing_field_is_a_shape_error_naming_it():
    broken = {k: v for k, v in RESULT.items() if k != "holdings"}
    with pytest.raises(ReplyShapeError, match="holdings"):
        parse_summary(broken)


def test_empty_summary_has_nothing():
    s = Summary.empty("bob")
    assert (s.user, s.cash, s.holdings, s.transactions_total) == ("bob", 0, {}, 0)
