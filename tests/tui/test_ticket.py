"""client_tui.model.ticket: the preview by the server's BUY/SELL rules, and the state machine."""

import pytest

from client_tui.model.ticket import (
    Preview,
    Problem,
    TicketFlow,
    TicketState,
    TransitionError,
    shares_text,
)


def test_a_buy_needs_the_whole_amount_in_cash_not_only_the_cost():
    # 100.00 at 12.34 costs 98.72, but the server reserves-checks the whole 100.00.
    p = Preview("buy", amount=10000, price=1234, cash=9900, free_shares=0)
    assert (p.shares, p.value) == (8, 9872)
    assert p.problems == (Problem.INSUFFICIENT_FUNDS,)
    assert p.blocked and p.cash_after is None
    assert p.requirement_text() == "needs $100.00, cash $99.00"
    assert p.warning() == ("insufficient_funds: a BUY holds the whole amount; add $1.00 (a) or "
                           "lower the amount")


def test_a_buy_within_cash_shows_cost_and_cash_after():
    p = Preview("buy", amount=10000, price=1234, cash=829248, free_shares=0)
    assert not p.problems and not p.blocked
    assert p.estimate_text() == "≈ 8 shares × 12.34 = 98.72 cost"
    assert p.requirement_text() == "needs $100.00, cash $8,292.48 · cash after 8,193.76"
    assert p.warning() == ""


def test_the_big_ticket_of_the_issue_warns_instead_of_a_negative_cash_after():
    p = Preview("buy", amount=9_999_900, price=1234, cash=454_824, free_shares=0)
    assert p.blocked and p.cash_after is None
    assert "cash after" not in p.requirement_text()
    assert p.requirement_text() == "needs $99,999.00, cash $4,548.24"


def test_cash_exactly_the_amount_is_enough():
    assert not Preview("buy", 10000, 1234, 10000, 0).blocked


def test_without_a_quote_the_cash_rule_still_holds():
    p = Preview("buy", amount=10000, price=None, cash=500, free_shares=0)
    assert p.shares is None and p.estimate_text() == ""
    assert p.blocked and p.problems == (Problem.INSUFFICIENT_FUNDS,)


def test_less_than_one_share_warns_but_lets_the_server_decide():
    p = Preview("buy", amount=500, price=1234, cash=10000, free_shares=0)
    assert p.problems == (Problem.AMOUNT_TOO_SMALL,) and not p.blocked
    assert p.warning().startswith("amount_too_small")


def test_a_sell_needs_shares_worth_the_amount():
    ok = Preview("sell", amount=2500, price=1234, cash=0, free_shares=3)
    assert ok.shares == 2 and not ok.problems
    assert ok.estimate_text() == "≈ 2 shares × 12.34 = 24.68 proceeds"
    assert ok.requirement_text() == "needs shares worth $25.00: you hold 3 shares free ($37.02)"
    short = Preview("sell", amount=5000, price=1234, cash=0, free_shares=3)
    assert short.problems == (Problem.INSUFFICIENT_SHARES,) and not short.blocked
    none = Preview("sell", amount=5000, price=None, cash=0, free_shares=0)
    assert none.blocked and none.requirement_text() == "you hold 0 shares free"


def test_shares_are_counted_in_words():
    assert [shares_text(n) for n in (0, 1, 2, 1000)] == [
        "0 shares", "1 share", "2 shares", "1,000 shares"]


def test_the_flow_from_entry_to_commit():
    flow = TicketFlow()
    assert (flow.state, flow.on_enter(), flow.on_escape()) == (TicketState.ENTRY, "place",
                                                               "close")
    flow.fire("place")
    assert (flow.on_enter(), flow.on_escape()) == (None, None)  # busy: keys wait
    flow.fire("placed")
    assert (flow.state, flow.on_enter(), flow.on_escape()) == (TicketState.PENDING, "commit",
                                                               "cancel")
    flow.fire("settle")
    flow.fire("kept")  # the server settled a newer order: ours is still pending
    assert flow.state == TicketState.PENDING
    flow.fire("settle")
    flow.fire("settled")
    assert flow.state == TicketState.DONE and flow.on_escape() == "close"


def test_a_refused_order_goes_back_to_entry_and_impossible_steps_raise():
    flow = TicketFlow()
    flow.fire("place")
    flow.fire("refused")
    assert flow.state == "entry"  # a str enum compares with its text
    with pytest.raises(TransitionError):
        flow.fire("settle")
    flow.finish()
    assert flow.state == TicketState.DONE
