"""client_tui.model.ticket: the preview by the server's BUY/SELL rules, and the ticket's life
from entry to commit, cancel or expiry (no Textual)."""

from dataclasses import replace

import pytest

from client_tui.model.intents import IntentError
from client_tui.model.summary import PendingOrder, ReplyShapeError, Summary
from client_tui.model.ticket import (
    EXPIRY_GRACE_MS,
    KeyAction,
    PlacedOrder,
    Preview,
    Ticket,
    TicketState,
    Toast,
    TransitionError,
    parse_entry,
    shares_text,
)
from protocol.errors import ErrorCode


def test_a_buy_needs_the_whole_amount_in_cash_not_only_the_cost():
    # 100.00 at 12.34 costs 98.72, but the server reserves-checks the whole 100.00.
    p = Preview("buy", amount=10000, price=1234, cash=9900, free_shares=0)
    assert (p.shares, p.value) == (8, 9872)
    assert p.problems == (ErrorCode.INSUFFICIENT_FUNDS,)
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
    assert p.blocked and p.problems == (ErrorCode.INSUFFICIENT_FUNDS,)


def test_less_than_one_share_warns_but_lets_the_server_decide():
    p = Preview("buy", amount=500, price=1234, cash=10000, free_shares=0)
    assert p.problems == (ErrorCode.AMOUNT_TOO_SMALL,) and not p.blocked
    assert p.warning().startswith("amount_too_small")


def test_a_sell_needs_shares_worth_the_amount():
    ok = Preview("sell", amount=2500, price=1234, cash=0, free_shares=3)
    assert ok.shares == 2 and not ok.problems
    assert ok.estimate_text() == "≈ 2 shares × 12.34 = 24.68 proceeds"
    assert ok.requirement_text() == "needs shares worth $25.00: you hold 3 shares free ($37.02)"
    short = Preview("sell", amount=5000, price=1234, cash=0, free_shares=3)
    assert short.problems == (ErrorCode.INSUFFICIENT_SHARES,) and not short.blocked
    none = Preview("sell", amount=5000, price=None, cash=0, free_shares=0)
    assert none.blocked and none.requirement_text() == "you hold 0 shares free"


def test_shares_are_counted_in_words():
    assert [shares_text(n) for n in (0, 1, 2, 1000)] == [
        "0 shares", "1 share", "2 shares", "1,000 shares"]


def test_a_blocked_order_says_why_it_was_not_placed():
    p = Preview("buy", amount=10000, price=1234, cash=9900, free_shares=0)
    assert p.not_placed_text().startswith("Not placed — insufficient_funds: ")


def test_a_preview_reads_cash_and_the_symbols_free_shares_from_the_summary():
    summary = replace(Summary.empty("alice"), cash=5000, holdings={"ABC": 3})
    assert Preview.of_account("sell", "ABC", 2500, 1234, summary) == Preview(
        "sell", 2500, 1234, 5000, 3)
    assert Preview.of_account("sell", "DEF", 2500, 1234, summary).free_shares == 0


def test_the_entry_is_a_symbol_and_an_amount_in_dollars():
    assert parse_entry(" abc ", "$1,250.5") == ("ABC", 125050)
    with pytest.raises(IntentError, match="enter an amount"):
        parse_entry("ABC", "  ")
    with pytest.raises(IntentError, match="not a stock symbol"):
        parse_entry("ABCD", "10")


# --- the ticket's life -----------------------------------------------------------------------

EXPIRES_AT = 1_795_611_435_944
BUY_REPLY = {"cash": "8193.76", "cost": "98.72", "expires_at": EXPIRES_AT, "price": "12.34",
             "shares": 8, "symbol": "ABC"}
SELL_REPLY = {"cash": "8543.76", "expires_at": EXPIRES_AT, "holding": 73, "price": "12.34",
              "proceeds": "98.72", "shares": 8, "symbol": "ABC"}


def pending_ticket(side: str = "buy", txn: int = 20) -> Ticket:
    ticket = Ticket(side)
    ticket.place()
    ticket.placed(txn, BUY_REPLY if side == "buy" else SELL_REPLY)
    return ticket


def test_a_new_ticket_places_on_enter_and_closes_on_escape():
    ticket = Ticket("buy")
    assert (ticket.state, ticket.on_enter(), ticket.on_escape()) == (
        TicketState.ENTRY, KeyAction.PLACE, KeyAction.CLOSE)


def test_keys_wait_while_the_order_is_on_its_way():
    ticket = Ticket("buy")
    ticket.place()
    assert (ticket.state, ticket.on_enter(), ticket.on_escape()) == (
        TicketState.PLACING, None, None)


def test_a_placed_order_is_read_from_the_reply_and_commits_on_enter_or_cancels_on_escape():
    ticket = pending_ticket()
    assert ticket.order == PlacedOrder("buy", 20, "ABC", 8, 1234, 9872, EXPIRES_AT)
    assert (ticket.state, ticket.on_enter(), ticket.on_escape()) == (
        TicketState.PENDING, KeyAction.COMMIT, KeyAction.CANCEL)


def test_a_pending_order_reads_as_shares_of_symbol_at_price_for_its_value():
    assert pending_ticket().order.describe() == "Pending BUY #20: 8 shares of ABC @ 12.34 = 98.72"
    assert pending_ticket("sell", 6).order.describe() == (
        "Pending SELL #6: 8 shares of ABC @ 12.34 = 98.72")


def test_a_refused_order_goes_back_to_the_entry():
    ticket = Ticket("buy")
    ticket.place()
    ticket.refused()
    assert ticket.state == "entry"  # a str enum compares with its text
    assert ticket.order is None


@pytest.mark.parametrize("broken", [
    {k: v for k, v in BUY_REPLY.items() if k != "expires_at"},
    {**BUY_REPLY, "price": 12.34},
    {**BUY_REPLY, "shares": "8"},
    {k: v for k, v in BUY_REPLY.items() if k != "cost"},
])
def test_a_reply_that_does_not_describe_an_order_ends_the_ticket(broken):
    ticket = Ticket("buy")
    ticket.place()
    with pytest.raises(ReplyShapeError):
        ticket.placed(20, broken)
    assert ticket.state == TicketState.DONE and ticket.on_escape() == KeyAction.CLOSE


def test_steps_the_state_does_not_allow_raise():
    ticket = Ticket("buy")
    with pytest.raises(TransitionError):
        ticket.settle()
    with pytest.raises(TransitionError):
        ticket.refused()


def test_a_commit_of_this_order_ends_the_ticket_with_what_was_bought():
    ticket = pending_ticket()
    ticket.settle()
    assert ticket.state == TicketState.SETTLING
    toast = ticket.settled(KeyAction.COMMIT, {**BUY_REPLY, "holding": 8})
    assert toast == Toast("Bought 8 ABC @ 12.34 (cost 98.72)", "information")
    assert ticket.state == TicketState.DONE


def test_a_commit_of_a_sell_says_sold_and_its_proceeds():
    ticket = pending_ticket("sell", 6)
    ticket.settle()
    assert ticket.settled(KeyAction.COMMIT, SELL_REPLY).message == (
        "Sold 8 ABC @ 12.34 (proceeds 98.72)")


def test_a_cancel_of_this_order_ends_the_ticket():
    ticket = pending_ticket()
    ticket.settle()
    assert ticket.settled(KeyAction.CANCEL, BUY_REPLY) == Toast(
        "Cancelled BUY of 8 ABC @ 12.34", "information")
    assert ticket.state == TicketState.DONE


def test_a_commit_that_settled_a_newer_order_keeps_this_one_pending_and_warns():
    ticket = pending_ticket()
    ticket.settle()
    newer = {"cash": "8543.76", "cost": "456.70", "holding": 10, "price": "45.67", "shares": 10,
             "symbol": "DEF"}
    toast = ticket.settled(KeyAction.COMMIT, newer)
    assert toast == Toast("COMMIT_BUY settled a newer order (10 DEF @ 45.67); this ticket's #20 "
                          "is still pending", "warning")
    assert ticket.state == TicketState.PENDING


def test_a_settle_reply_of_the_wrong_shape_is_not_this_order():
    assert not pending_ticket().order.is_settled_by({**BUY_REPLY, "shares": "8"})


def test_a_newer_pending_order_of_the_side_blocks_commit_and_cancel():
    ticket = pending_ticket()
    newer = PendingOrder("buy", 21, "QRS", 1, 8800, EXPIRES_AT + 5_000)
    assert ticket.settle_blocker(KeyAction.COMMIT, newer) == (
        "a newer BUY #21 is pending: the server would commit that one first; settle it in "
        "Orders (3)")
    assert ticket.settle_blocker(KeyAction.CANCEL, None) == ""
    this_one = PendingOrder("buy", 20, "ABC", 8, 1234, EXPIRES_AT)
    assert ticket.settle_blocker(KeyAction.COMMIT, this_one) == ""


def test_a_failed_settle_with_no_pending_order_left_ends_the_ticket_with_an_error():
    ticket = pending_ticket()
    ticket.settle()
    toast = ticket.settle_failed(KeyAction.COMMIT, "no_pending_buy", "no_pending_buy: none")
    assert toast == Toast("COMMIT BUY #20 failed: no_pending_buy: none", "error")
    assert ticket.state == TicketState.DONE


def test_a_failed_settle_otherwise_keeps_the_order_pending():
    ticket = pending_ticket()
    ticket.settle()
    assert ticket.settle_failed(KeyAction.CANCEL, "busy", "busy: try again") is None
    assert ticket.state == TicketState.PENDING


def test_the_servers_expiry_of_this_order_ends_the_ticket():
    ticket = pending_ticket()
    toast = ticket.expired_by_server({"txn": 20, "shares": 8, "symbol": "ABC", "price": "12.34",
                                      "cash": "8292.48"})
    assert toast == Toast("BUY #20 expired: 8 ABC @ 12.34 released (cash 8,292.48)", "warning")
    assert ticket.state == TicketState.DONE


def test_the_servers_expiry_of_another_order_leaves_the_ticket_alone():
    ticket = pending_ticket()
    assert ticket.expired_by_server({"txn": 13}) is None
    assert ticket.state == TicketState.PENDING
    assert Ticket("buy").expired_by_server({"txn": None}) is None  # nothing placed yet


def test_the_countdown_runs_by_the_servers_clock():
    ticket = pending_ticket()
    assert Ticket("buy").tick(EXPIRES_AT) is None  # nothing pending: no countdown
    countdown = ticket.tick(EXPIRES_AT - 41_500)
    assert (countdown.left_ms, countdown.check_expiry) == (41_500, False)
    assert countdown.hint == "Expires in 0:42 — Enter commits · Esc cancels"


def test_after_the_countdown_the_ticket_waits_for_the_push_then_asks_the_server_once():
    ticket = pending_ticket()
    at_zero = ticket.tick(EXPIRES_AT)
    assert at_zero.hint.startswith("Expired by the server's clock") and not at_zero.check_expiry
    assert not ticket.tick(EXPIRES_AT + EXPIRY_GRACE_MS).check_expiry
    assert ticket.tick(EXPIRES_AT + EXPIRY_GRACE_MS + 1).check_expiry
    assert not ticket.tick(EXPIRES_AT + EXPIRY_GRACE_MS + 2).check_expiry


def test_an_order_missing_from_the_account_after_the_grace_expired_unannounced():
    ticket = pending_ticket()
    still = [PendingOrder("buy", 20, "ABC", 8, 1234, EXPIRES_AT)]
    assert ticket.expired_unannounced(still) is None and ticket.state == TicketState.PENDING
    assert ticket.expired_unannounced([]) == Toast("BUY #20 expired", "warning")
    assert ticket.state == TicketState.DONE


def test_a_done_ticket_closes_on_escape():
    ticket = pending_ticket()
    ticket.expired_unannounced([])
    assert (ticket.on_enter(), ticket.on_escape()) == (None, KeyAction.CLOSE)
    ticket.close()
    assert ticket.state == TicketState.DONE
