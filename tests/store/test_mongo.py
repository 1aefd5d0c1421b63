"""MongoStore beyond the contract: what a batch cut short by a crash leaves, and how it heals."""

from __future__ import annotations

import pytest

from server.shards.account import BuyTrigger
from server.store.mongo import MongoStore
from server.store.port import Batch
from tests.store.samples import answer, batch_for, command_event, idle_account, reply, tx

pytestmark = pytest.mark.emulated


@pytest.fixture
def store(mongomock_client):
    opened = MongoStore("mongodb://emulated", client=mongomock_client)
    yield opened
    opened.close()


def cut_short(store: MongoStore, batch: Batch) -> None:
    """Write what a crash between the audit writes and the document write leaves behind."""
    store.commit_batch(Batch(transactions=batch.transactions, events=batch.events,
                             replies=batch.replies))


def test_transactions_of_a_batch_cut_short_are_not_loaded(store):
    account = idle_account("alice", cash=500)
    store.commit_batch(batch_for(account, transactions=[("alice", 0, tx(1))]))
    account.version += 1
    cut_short(store, batch_for(account, transactions=[("alice", 1, tx(2, "buy_reserve", -90))]))

    loaded = store.load_account("alice")

    assert loaded.transactions == [tx(1)]
    assert loaded.version == 1


def test_re_applying_a_batch_cut_short_overwrites_what_it_left(store):
    account = idle_account("alice")
    store.commit_batch(batch_for(account))
    account.version += 1
    cut_short(store, batch_for(account, events=[command_event(7, "alice", 1)],
                               transactions=[("alice", 0, tx(7, "buy_reserve", -90))]))

    retried = [command_event(8, "alice", 1)]
    store.commit_batch(batch_for(account, events=retried,
                                 transactions=[("alice", 0, tx(8, "buy_reserve", -80))]))

    assert store.load_account("alice").transactions == [tx(8, "buy_reserve", -80)]
    assert list(store.iter_events()) == retried


def test_active_accounts_also_hide_transactions_of_a_batch_cut_short(store):
    account = idle_account("alice")
    account.buy_triggers["ABC"] = BuyTrigger(reserved=500)
    store.commit_batch(batch_for(account, transactions=[("alice", 0, tx(1))]))
    cut_short(store, batch_for(account, transactions=[("alice", 1, tx(2))]))

    (loaded,) = store.load_active_accounts()

    assert loaded.transactions == [tx(1)]


def test_replies_of_a_batch_cut_short_are_not_loaded(store):
    account = idle_account("alice")
    answer(account, 5)
    store.commit_batch(batch_for(account))
    answer(account, 9)
    account.version += 1
    cut_short(store, batch_for(account, replies=[("alice", *reply(9))]))

    assert list(store.load_account("alice").recent) == [reply(5)]


def test_active_accounts_also_hide_replies_of_a_batch_cut_short(store):
    account = idle_account("alice")
    account.buy_triggers["ABC"] = BuyTrigger(reserved=500)
    answer(account, 5)
    store.commit_batch(batch_for(account))
    answer(account, 9)
    cut_short(store, batch_for(account, replies=[("alice", *reply(9))]))

    (loaded,) = store.load_active_accounts()

    assert list(loaded.recent) == [reply(5)]


def test_re_applying_a_command_cut_short_overwrites_its_reply(store):
    account = idle_account("alice")
    store.commit_batch(batch_for(account))
    account.version += 1
    cut_short(store, batch_for(account, replies=[("alice", 9, "ADD,alice,9.00", "lost")]))

    answer(account, 9)
    store.commit_batch(batch_for(account))

    assert list(store.load_account("alice").recent) == [reply(9)]
