"""The store contract: every adapter (SQLite, MongoDB emulated, MongoDB real) behaves the same."""

from __future__ import annotations

import os
import uuid

import pytest

from server.shards.account import RECENT_REPLIES, Pending
from server.shards.audit_events import ERROR_EVENT, AuditEvent
from server.store.mongo import MongoStore
from server.store.port import Batch
from server.store.sqlite import SqliteStore
from tests.store.samples import (
    T0,
    answer,
    batch_for,
    busy_account,
    command_event,
    every_kind_of_event,
    idle_account,
    old_format_doc,
    reply,
    tx,
)

MONGO_URL = os.environ.get("DAYTRADE_MONGO_URL")


@pytest.fixture(params=[
    "sqlite",
    pytest.param("mongomock", marks=pytest.mark.emulated),
    pytest.param("mongo", marks=[
        pytest.mark.mongo,
        pytest.mark.skipif(not MONGO_URL, reason="set DAYTRADE_MONGO_URL to a MongoDB server"),
    ]),
])
def store(request, tmp_path):
    if request.param == "sqlite":
        opened = SqliteStore(tmp_path / "daytrade.sqlite")
        yield opened
        opened.close()
    elif request.param == "mongomock":
        client = request.getfixturevalue("mongomock_client")
        opened = MongoStore("mongodb://emulated", client=client)
        yield opened
        opened.close()
    else:
        database = f"daytrade_test_{uuid.uuid4().hex[:12]}"
        opened = MongoStore(MONGO_URL, database=database)
        try:
            yield opened
        finally:
            opened._client.drop_database(database)
            opened.close()


def test_a_missing_user_loads_as_none(store):
    assert store.load_account("nobody") is None
    assert not store.account_exists("nobody")


def test_a_committed_account_round_trips_with_all_its_state(store):
    account = busy_account()
    records = [tx(40), tx(41, "buy_reserve", -2_100)]
    rows = [("alice", idx, record) for idx, record in enumerate(records)]
    store.commit_batch(batch_for(account, transactions=rows))
    account.transactions = records

    loaded = store.load_account("alice")

    assert loaded == account
    assert loaded.recent == account.recent
    assert loaded.persisted_tx == 2


def test_account_exists_once_committed(store):
    store.commit_batch(batch_for(idle_account("bob")))
    assert store.account_exists("bob")


def test_transactions_of_several_batches_load_in_index_order(store):
    account = idle_account("carol")
    for idx in range(12):
        account.version += 1
        store.commit_batch(batch_for(account, transactions=[("carol", idx, tx(100 + idx))]))

    loaded = store.load_account("carol")

    assert [record.txn for record in loaded.transactions] == list(range(100, 112))


def test_an_empty_batch_writes_nothing(store):
    store.commit_batch(Batch())
    assert list(store.iter_events()) == []
    assert list(store.load_active_accounts()) == []


def test_a_batch_replayed_twice_changes_nothing(store):
    account = busy_account(version=3)
    batch = batch_for(account, events=every_kind_of_event(42, "alice"),
                      transactions=[("alice", 0, tx(40)), ("alice", 1, tx(42, "sell_reserve", 0))])
    store.commit_batch(batch)
    first_events = list(store.iter_events())
    first_account = store.load_account("alice")

    store.commit_batch(batch)
    store.commit_batch(batch)

    assert list(store.iter_events()) == first_events
    assert len(first_events) == 4
    assert store.load_account("alice") == first_account
    assert len(first_account.transactions) == 2


def test_an_older_version_never_overwrites_a_newer_one(store):
    newer = idle_account("dave", cash=900, version=5)
    older = idle_account("dave", cash=100, version=4)
    store.commit_batch(batch_for(newer))

    store.commit_batch(batch_for(older))

    assert store.load_account("dave").cash == 900


def test_an_equal_version_does_not_replace_the_stored_document(store):
    store.commit_batch(batch_for(idle_account("erin", cash=900, version=5)))
    store.commit_batch(batch_for(idle_account("erin", cash=100, version=5)))
    assert store.load_account("erin").cash == 900


def test_a_newer_version_replaces_the_document(store):
    store.commit_batch(batch_for(idle_account("fay", cash=100, version=1)))
    store.commit_batch(batch_for(idle_account("fay", cash=700, version=2)))
    assert store.load_account("fay").cash == 700


def test_events_stream_in_txn_user_seq_order_across_users(store):
    events = [
        command_event(7, "zed", 3),
        command_event(5, "bob", 2),
        command_event(7, "amy", 9),
        command_event(5, "bob", 1),
        AuditEvent(ERROR_EVENT, 6, 1, T0, "shard-1", None, message="bad user id"),
        command_event(7, "amy", 10),
        command_event(6, "amy", 4),
    ]
    # Different users' events arrive in different batches, out of order, as shards commit them.
    store.commit_batch(Batch(events=events[:3]))
    store.commit_batch(Batch(events=events[3:]))

    streamed = [(e.txn, e.user, e.seq) for e in store.iter_events()]

    assert streamed == [(5, "bob", 1), (5, "bob", 2), (6, None, 1), (6, "amy", 4),
                        (7, "amy", 9), (7, "amy", 10), (7, "zed", 3)]


def test_events_filtered_by_user_keep_their_order(store):
    store.commit_batch(Batch(events=[command_event(9, "amy", 3), command_event(2, "bob", 1),
                                     command_event(4, "amy", 2), command_event(4, "amy", 1)]))

    streamed = [(e.txn, e.seq) for e in store.iter_events("amy")]

    assert streamed == [(4, 1), (4, 2), (9, 3)]


def test_every_event_field_round_trips_and_none_stays_none(store):
    events = [*every_kind_of_event(42, "alice"),
              AuditEvent(ERROR_EVENT, 43, 1, T0, "shard-1", None, command="ADD",
                         message="user id must match [A-Za-z0-9_]{1,32}")]
    store.commit_batch(Batch(events=events))

    assert list(store.iter_events()) == events


def test_many_events_stream_completely_in_order(store):
    events = [command_event(txn, f"user{txn % 7}", txn) for txn in range(2_500, 0, -1)]
    store.commit_batch(Batch(events=events))

    streamed = list(store.iter_events())

    assert [e.txn for e in streamed] == list(range(1, 2_501))


def test_reserved_txns_are_fresh_and_increasing(store):
    first = store.reserve_txns(100)
    second = store.reserve_txns(1)
    third = store.reserve_txns(50)

    assert first >= 1
    assert second == first + 100
    assert third == second + 1


def test_reserved_txns_start_above_the_floor(store):
    store.reserve_txns(10)

    first = store.reserve_txns(5, floor=1_000)

    assert first == 1_001
    assert store.reserve_txns(1) == 1_006


def test_a_floor_below_the_reserved_txns_is_already_honoured(store):
    first = store.reserve_txns(10, floor=500)

    assert store.reserve_txns(10, floor=3) == first + 10


def test_reserving_no_txns_is_refused(store):
    with pytest.raises(ValueError):
        store.reserve_txns(0)


def test_an_empty_store_knows_of_no_txn(store):
    assert store.max_txn() == 0


def test_the_highest_txn_known_is_the_newest_audit_event_above_the_reserved_ones(store):
    store.reserve_txns(10)
    store.commit_batch(Batch(events=[command_event(40, "amy", 1), command_event(25, "bob", 1),
                                     AuditEvent(ERROR_EVENT, 41, 1, T0, "shard-1", None)]))

    assert store.max_txn() == 41


def test_the_highest_txn_known_is_the_last_reserved_above_the_audit_events(store):
    store.commit_batch(Batch(events=[command_event(40, "amy", 1)]))

    first = store.reserve_txns(5, floor=100)

    assert store.max_txn() == first + 4 == 105


def test_active_accounts_are_those_with_pending_entries_or_triggers(store):
    with_buy = idle_account("buyer")
    with_buy.pending_buys.append(Pending(1, "ABC", 1, 100, T0))
    with_sell = idle_account("seller")
    with_sell.pending_sells.append(Pending(2, "ABC", 1, 100, T0))
    with_trigger = busy_account("trig")
    with_trigger.pending_buys.clear()
    with_trigger.pending_sells.clear()
    with_trigger.sell_triggers.clear()
    for account in (with_buy, with_sell, with_trigger, idle_account("idle")):
        store.commit_batch(batch_for(account, transactions=[(account.user, 0, tx(1))]))

    active = {account.user: account for account in store.load_active_accounts()}

    assert set(active) == {"buyer", "seller", "trig"}
    assert active["trig"] == store.load_account("trig")
    assert active["buyer"].transactions == [tx(1)]


def test_an_account_that_settles_leaves_the_active_list(store):
    account = idle_account("gus")
    account.pending_buys.append(Pending(1, "ABC", 1, 100, T0))
    store.commit_batch(batch_for(account))
    account.pending_buys.clear()
    account.version += 1

    store.commit_batch(batch_for(account))

    assert list(store.load_active_accounts()) == []


def test_many_active_accounts_all_load_with_their_own_transactions(store):
    batch = Batch()
    for n in range(450):
        account = busy_account(f"u{n:03}")
        batch.accounts.append(account.to_doc())
        batch.transactions += [(account.user, idx, tx(n * 10 + idx)) for idx in range(n % 3)]
    store.commit_batch(batch)

    active = list(store.load_active_accounts())

    assert [a.user for a in active] == [f"u{n:03}" for n in range(450)]
    assert all([t.txn for t in a.transactions] == [n * 10 + i for i in range(n % 3)]
               for n, a in enumerate(active))


def test_replies_round_trip_oldest_first(store):
    account = idle_account("ivy")
    for txn in (3, 9, 14):
        answer(account, txn)
    store.commit_batch(batch_for(account))

    assert list(store.load_account("ivy").recent) == [reply(3, "ivy"), reply(9, "ivy"),
                                                       reply(14, "ivy")]


def test_replies_of_several_batches_load_in_txn_order(store):
    account = idle_account("ivy")
    for txn in (5, 20, 31):
        answer(account, txn)
        account.version += 1
        store.commit_batch(batch_for(account, replies=[("ivy", *reply(txn, "ivy"))]))

    assert [txn for txn, _, _ in store.load_account("ivy").recent] == [5, 20, 31]


def test_only_the_newest_replies_load(store):
    account = idle_account("jay")
    txns = range(100, 100 + 3 * RECENT_REPLIES + 2)
    for first in range(0, len(txns), 7):  # several batches, each with a few new rows
        for txn in txns[first:first + 7]:
            answer(account, txn)
        account.version += 1
        store.commit_batch(batch_for(account, replies=[
            ("jay", *reply(txn, "jay")) for txn in txns[first:first + 7]]))

    loaded = store.load_account("jay")

    assert [txn for txn, _, _ in loaded.recent] == list(txns[-RECENT_REPLIES:])
    assert list(loaded.recent) == list(account.recent)


def test_a_batch_with_more_new_replies_than_are_kept_loads_its_newest(store):
    account = idle_account("kim")
    for txn in range(1, RECENT_REPLIES + 6):
        answer(account, txn)
    rows = [("kim", *reply(txn, "kim")) for txn in range(1, RECENT_REPLIES + 6)]

    store.commit_batch(batch_for(account, replies=rows[::-1]))  # row order does not matter

    assert [txn for txn, _, _ in store.load_account("kim").recent] == list(
        range(6, RECENT_REPLIES + 6))


def test_a_replayed_batch_does_not_duplicate_replies(store):
    account = idle_account("lou")
    for txn in (7, 8):
        answer(account, txn)
    batch = batch_for(account)
    store.commit_batch(batch)

    store.commit_batch(batch)
    store.commit_batch(batch)

    assert list(store.load_account("lou").recent) == [reply(7, "lou"), reply(8, "lou")]


def test_an_old_batch_replayed_after_newer_ones_does_not_bring_its_replies_back(store):
    account = idle_account("lou")
    answer(account, 1)
    first = batch_for(account)
    store.commit_batch(first)
    for txn in range(2, RECENT_REPLIES + 3):
        answer(account, txn)
        account.version += 1
        store.commit_batch(batch_for(account, replies=[("lou", *reply(txn, "lou"))]))

    store.commit_batch(first)

    assert [txn for txn, _, _ in store.load_account("lou").recent] == list(
        range(3, RECENT_REPLIES + 3))


def test_replies_of_different_users_stay_apart(store):
    amy, bob = idle_account("amy"), idle_account("bob")
    answer(amy, 4)
    answer(bob, 5)
    answer(amy, 6)
    store.commit_batch(Batch(accounts=[amy.to_doc(), bob.to_doc()],
                             replies=[("amy", *reply(4, "amy")), ("bob", *reply(5, "bob")),
                                      ("amy", *reply(6, "amy"))]))

    assert list(store.load_account("amy").recent) == [reply(4, "amy"), reply(6, "amy")]
    assert list(store.load_account("bob").recent) == [reply(5, "bob")]


def test_active_accounts_load_with_their_replies(store):
    account = busy_account("max")
    store.commit_batch(batch_for(account))

    (loaded,) = store.load_active_accounts()

    assert loaded.recent == account.recent
    assert len(loaded.recent) == 2


def test_a_document_of_the_old_format_loads_the_replies_it_carries(store):
    account = busy_account("ned")
    store.commit_batch(Batch(accounts=[old_format_doc(account)]))

    (active,) = store.load_active_accounts()

    assert store.load_account("ned").recent == account.recent
    assert active.recent == account.recent


def test_an_old_format_document_with_newer_reply_rows_loads_both(store):
    account = busy_account("oz")  # replies 40 and 42 inside the document
    old_doc = old_format_doc(account)
    answer(account, 43)
    old_doc["last_txn"] = 43
    store.commit_batch(Batch(accounts=[old_doc], replies=[("oz", *reply(43, "oz"))]))

    assert [txn for txn, _, _ in store.load_account("oz").recent] == [40, 42, 43]


def test_a_missing_password_hash_is_none(store):
    assert store.get_password_hash("alice") is None


def test_a_password_hash_is_stored_and_replaced(store):
    store.set_password_hash("alice", "scrypt$1")
    assert store.get_password_hash("alice") == "scrypt$1"

    store.set_password_hash("alice", "scrypt$2")

    assert store.get_password_hash("alice") == "scrypt$2"
    assert store.get_password_hash("bob") is None


def test_credentials_alone_do_not_make_an_account(store):
    store.set_password_hash("hal", "scrypt$1")
    assert not store.account_exists("hal")
