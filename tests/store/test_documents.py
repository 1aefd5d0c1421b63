"""An account document is active while it has a pending entry or a trigger; a load's replies
are the newest reply rows, oldest first, merged with those an old-format document carries."""

from __future__ import annotations

from server.shards.account import RECENT_REPLIES, BuyTrigger, Pending, SellTrigger
from server.store.documents import is_active, recent_replies
from tests.store.samples import T0, idle_account, reply


def test_an_account_with_nothing_waiting_is_not_active():
    assert not is_active(idle_account("alice").to_doc())


def test_a_pending_buy_makes_it_active():
    account = idle_account("alice")
    account.pending_buys.append(Pending(1, "ABC", 1, 100, T0))
    assert is_active(account.to_doc())


def test_a_pending_sell_makes_it_active():
    account = idle_account("alice")
    account.pending_sells.append(Pending(1, "ABC", 1, 100, T0))
    assert is_active(account.to_doc())


def test_a_buy_trigger_makes_it_active():
    account = idle_account("alice")
    account.buy_triggers["ABC"] = BuyTrigger(reserved=500)
    assert is_active(account.to_doc())


def test_a_sell_trigger_makes_it_active():
    account = idle_account("alice")
    account.sell_triggers["ABC"] = SellTrigger(amount=500)
    assert is_active(account.to_doc())


def test_no_reply_rows_leave_the_replies_to_the_document():
    assert recent_replies({"recent": [[1, "ADD,a,1.00", "{}"]]}, []) is None


def test_reply_rows_come_oldest_first():
    rows = [reply(9), reply(4), reply(2)]
    assert recent_replies(idle_account("alice").to_doc(), rows) == [reply(2), reply(4), reply(9)]


def test_replies_inside_an_old_document_merge_with_newer_rows_by_txn():
    doc = {"recent": [list(reply(t)) for t in range(1, RECENT_REPLIES + 1)]}
    rows = [reply(RECENT_REPLIES + 1), (RECENT_REPLIES, "ADD,alice,0.00", "from the row")]

    merged = recent_replies(doc, rows)

    assert [txn for txn, _, _ in merged] == list(range(2, RECENT_REPLIES + 2))
    assert merged[-2] == (RECENT_REPLIES, "ADD,alice,0.00", "from the row")
    assert merged[0] == reply(2)
