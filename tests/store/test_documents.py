"""An account document is active while it has a pending entry or a trigger."""

from __future__ import annotations

from server.shards.account import BuyTrigger, Pending, SellTrigger
from server.store.documents import is_active
from tests.store.samples import T0, idle_account


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
