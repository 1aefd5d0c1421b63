"""client_tui.model.portfolio: average cost from the user's fills, P&L, reserved, total value."""

from client_tui.model.portfolio import (
    CostBasis,
    cost_basis,
    held_shares,
    is_sell_fill,
    positions,
    reserved_total,
    totals,
)
from client_tui.model.summary import (
    BuyTrigger,
    PendingOrder,
    SellTrigger,
    Summary,
    Transaction,
)


def tx(kind, symbol, shares, price, delta=0, txn=1):
    return Transaction(txn, 0, kind, symbol, shares, price, delta)


def summary(**kw):
    base = dict(user="u", cash=0, holdings={}, pending_buys=(), pending_sells=(),
                buy_triggers=(), sell_triggers=(), transactions=(), transactions_total=0)
    base.update(kw)
    return Summary(**base)


def test_committed_buys_average_by_weight():
    basis = cost_basis([tx("buy_commit", "ABC", 10, 1000), tx("buy_commit", "ABC", 30, 1200)])
    assert basis["ABC"] == CostBasis(40, 46000)
    assert basis["ABC"].average == 1150


def test_reservations_and_releases_do_not_change_the_cost():
    basis = cost_basis([tx("buy_reserve", "ABC", 10, 1000, -10000),
                        tx("buy_release", "ABC", 10, 1000, 10000),
                        tx("sell_reserve", "ABC", 5, 900),
                        tx("trigger_reserve", "ABC", 3, 1500)])
    assert basis == {}


def test_a_sell_takes_shares_out_at_the_average_leaving_it_unchanged():
    basis = cost_basis([tx("buy_commit", "ABC", 10, 1000), tx("buy_commit", "ABC", 10, 2000),
                        tx("sell_commit", "ABC", 5, 5000, 25000)])
    assert basis["ABC"] == CostBasis(15, 22500)
    assert basis["ABC"].average == 1500


def test_selling_everything_clears_the_basis():
    basis = cost_basis([tx("buy_commit", "ABC", 3, 1000), tx("sell_commit", "ABC", 3, 900, 2700)])
    assert basis["ABC"] == CostBasis()
    assert basis["ABC"].average is None


def test_a_buy_trigger_fill_credits_only_its_refund_so_it_is_a_buy():
    fill = tx("trigger_fill", "XYZ", 28, 350, 200)
    assert not is_sell_fill(fill)
    assert cost_basis([fill])["XYZ"] == CostBasis(28, 9800)


def test_a_sell_trigger_fill_credits_shares_times_price_so_it_is_a_sell():
    fill = tx("trigger_fill", "ABC", 2, 1500, 3000)
    assert is_sell_fill(fill)
    basis = cost_basis([tx("buy_commit", "ABC", 4, 1000), fill])
    assert basis["ABC"] == CostBasis(2, 2000)


def test_partial_sell_rounds_the_remaining_cost_to_a_cent():
    basis = CostBasis(3, 1000).sold(1)
    assert basis == CostBasis(2, 667)


def test_held_shares_count_pending_sells_and_sell_trigger_reservations():
    s = summary(pending_sells=(PendingOrder("sell", 9, "ABC", 2, 1234, 0),),
                sell_triggers=(SellTrigger("ABC", 2000, 1500, 1),
                               SellTrigger("DEF", 1000, None, 0)))
    assert held_shares(s) == {"ABC": 3}


def test_positions_value_owned_shares_at_the_last_quote_and_compare_with_cost():
    s = summary(holdings={"ABC": 8}, pending_sells=(PendingOrder("sell", 9, "ABC", 2, 1234, 0),))
    basis = {"ABC": CostBasis(10, 10000)}
    (p,) = positions(s, {"ABC": 1250}, basis)
    assert (p.shares, p.free_shares, p.held_shares) == (10, 8, 2)
    assert (p.value, p.average_cost, p.cost, p.unrealised) == (12500, 1000, 10000, 2500)


def test_a_position_without_a_quote_has_no_value_or_pnl():
    (p,) = positions(summary(holdings={"ABC": 1}), {}, {"ABC": CostBasis(1, 500)})
    assert p.value is None and p.unrealised is None


def test_a_position_without_fills_in_history_has_no_cost():
    (p,) = positions(summary(holdings={"ABC": 1}), {"ABC": 500}, {})
    assert p.cost is None and p.unrealised is None and p.value == 500


def test_positions_are_sorted_and_skip_symbols_with_no_shares():
    s = summary(holdings={"XYZ": 1, "ABC": 2, "DEF": 0})
    assert [p.symbol for p in positions(s, {}, {})] == ["ABC", "XYZ"]


def test_reserved_is_pending_buys_cost_plus_buy_trigger_reservations():
    s = summary(pending_buys=(PendingOrder("buy", 3, "ABC", 8, 1234, 0),),
                buy_triggers=(BuyTrigger("XYZ", 10000, 400), BuyTrigger("QRS", 5000, None)))
    assert reserved_total(s) == 8 * 1234 + 15000


def test_total_value_is_cash_plus_holdings_at_last_quotes_plus_reserved():
    s = summary(cash=50000, holdings={"ABC": 10, "DEF": 1},
                buy_triggers=(BuyTrigger("XYZ", 10000, 400),))
    rows = positions(s, {"ABC": 1000}, {"ABC": CostBasis(10, 9000)})
    t = totals(s, rows)
    assert (t.cash, t.reserved, t.holdings_value, t.unrealised) == (50000, 10000, 10000, 1000)
    assert t.total_value == 70000
    assert t.unpriced == ("DEF",)
