"""What MongoStore sends a real MongoDB server, seen on the wire by a scripted server (mockupdb)."""

from __future__ import annotations

import pytest
from mockupdb import MockupDB, OpMsg, going
from pymongo.errors import BulkWriteError

from server.store.mongo import MongoStore
from tests.store.samples import (
    answer,
    batch_for,
    busy_account,
    command_event,
    idle_account,
    reply,
    tx,
)

#: pymongo 4.20 refuses servers older than wire version 9 (MongoDB 4.4); 21 is MongoDB 7.0.
HELLO = {"ismaster": True, "minWireVersion": 0, "maxWireVersion": 21}
WAIT_S = 10
MAJORITY_JOURNALED = {"w": "majority", "j": True}
INDEXED_COLLECTIONS = {"events", "transactions", "replies", "accounts"}


@pytest.fixture
def server():
    mock = MockupDB(auto_ismaster=HELLO, request_timeout=WAIT_S)
    mock.run()
    yield mock
    mock.stop()


def url(server: MockupDB) -> str:
    return f"mongodb://127.0.0.1:{server.port}"


def open_store(server: MockupDB, **options) -> tuple[MongoStore, list[OpMsg]]:
    """A MongoStore on the scripted server, and the createIndexes requests it made on opening."""
    with going(MongoStore, url(server), **options) as opened:
        requests = []
        for _ in INDEXED_COLLECTIONS:
            request = server.receives()
            assert request.command_name == "createIndexes"
            request.ok()
            requests.append(request)
    return opened(), requests


@pytest.fixture
def store(server):
    opened, _ = open_store(server)
    yield opened
    opened.close()


def raised(call, *args) -> BaseException | None:
    """What `call(*args)` raised, or None (mockupdb re-raises errors as `type(str(error))`, which
    a BulkWriteError cannot survive)."""
    try:
        call(*args)
    except Exception as error:
        return error
    return None


def write_command(request: OpMsg, collection: str) -> dict:
    doc = request.doc
    assert request.command_name == "update"
    assert doc["update"] == collection
    assert doc["$db"] == "daytrade"
    assert doc["ordered"] is False
    assert doc["writeConcern"] == MAJORITY_JOURNALED
    return doc


def upserted(request: OpMsg) -> None:
    updates = request.doc["updates"]
    request.ok(n=len(updates), nModified=0,
               upserted=[{"index": i, "_id": u["q"]["_id"]} for i, u in enumerate(updates)])


def test_opening_creates_the_ordering_indexes(server):
    opened, requests = open_store(server)
    opened.close()

    by_collection = {r.doc["createIndexes"]: r.doc["indexes"] for r in requests}

    assert set(by_collection) == INDEXED_COLLECTIONS
    assert [dict(i["key"]) for i in by_collection["events"]] == [
        {"txn": 1, "user": 1, "seq": 1, "server": 1},
        {"user": 1, "txn": 1, "seq": 1, "server": 1},
    ]
    assert dict(by_collection["transactions"][0]["key"]) == {"user": 1, "idx": 1}
    assert dict(by_collection["replies"][0]["key"]) == {"user": 1, "txn": 1}
    assert dict(by_collection["accounts"][0]["key"]) == {"active": 1}


def test_a_batch_sends_events_then_transactions_then_replies_then_conditional_documents(
        server, store):
    account = busy_account(version=3)
    batch = batch_for(account, events=[command_event(42, "alice", 8)],
                      transactions=[("alice", 0, tx(40)), ("alice", 1, tx(42, "buy_reserve", -50))])

    with going(store.commit_batch, batch) as committed:
        events = server.receives()
        doc = write_command(events, "events")
        assert doc["updates"] == [{
            "q": {"_id": "alice:8:shard-0"},
            "u": {"_id": "alice:8:shard-0", "kind": "userCommand", "txn": 42, "seq": 8,
                  "timestamp": command_event(42, "alice", 8).timestamp, "server": "shard-0",
                  "user": "alice", "command": "ADD", "funds": 100},
            "upsert": True,
        }]
        upserted(events)

        transactions = server.receives()
        doc = write_command(transactions, "transactions")
        assert [u["q"] for u in doc["updates"]] == [{"_id": "alice:0"}, {"_id": "alice:1"}]
        assert doc["updates"][1]["u"]["cash_delta"] == -50
        upserted(transactions)

        replies = server.receives()
        doc = write_command(replies, "replies")
        assert [u["q"] for u in doc["updates"]] == [{"_id": "alice:40"}, {"_id": "alice:42"}]
        assert doc["updates"][1]["u"] == {
            "_id": "alice:42", "user": "alice", "txn": 42, "line": "SELL,alice,XYZ,20.00",
            "reply": '{"txn":42,"ok":true,"cmd":"SELL"}'}
        assert doc["updates"][1]["upsert"] is True
        upserted(replies)

        accounts = server.receives()
        doc = write_command(accounts, "accounts")
        (update,) = doc["updates"]
        assert update["q"] == {"_id": "alice", "version": {"$lt": 3}}
        assert update["u"]["$set"]["state"] == account.to_doc()
        assert update["u"]["$set"]["active"] is True
        assert update["u"]["$max"] == {"tx_count": 2}
        assert update["upsert"] is True
        upserted(accounts)
    committed()


def test_a_document_already_newer_is_a_tolerated_duplicate_key(server, store):
    with going(raised, store.commit_batch, batch_for(idle_account("bob", version=2))) as error:
        server.receives(OpMsg("update", "accounts")).ok(n=0, nModified=0, writeErrors=[
            {"index": 0, "code": 11000, "errmsg": "E11000 duplicate key error dup key: bob"}])
    assert error() is None


def test_any_other_write_error_fails_the_commit(server, store):
    with going(raised, store.commit_batch, batch_for(idle_account("bob"))) as error:
        server.receives(OpMsg("update", "accounts")).ok(n=0, nModified=0, writeErrors=[
            {"index": 0, "code": 121, "errmsg": "Document failed validation"}])
    assert isinstance(error(), BulkWriteError)


def test_an_unmet_write_concern_fails_the_commit(server, store):
    batch = batch_for(idle_account("bob"), events=[command_event(1, "bob", 1)])
    with going(raised, store.commit_batch, batch) as error:
        server.receives(OpMsg("update", "events")).ok(n=1, nModified=0, writeConcernError={
            "code": 64, "errmsg": "waiting for replication timed out"})
    assert isinstance(error(), BulkWriteError)


def test_a_configured_write_concern_is_sent(server):
    opened, _ = open_store(server, write_concern="1", journal=False)
    try:
        with going(opened.commit_batch, batch_for(idle_account("bob"))) as committed:
            request = server.receives(OpMsg("update", "accounts"))
            assert request.doc["writeConcern"] == {"w": 1, "j": False}
            upserted(request)
        committed()
    finally:
        opened.close()


def test_loading_finds_the_document_then_its_counted_transactions_then_newest_replies(
        server, store):
    account = idle_account("alice", cash=500, version=4)
    answer(account, 11)
    stored = {"_id": "alice", "version": 4, "active": False, "tx_count": 2,
              "state": account.to_doc()}
    newest_first = [{"txn": 11, "line": reply(11)[1], "reply": reply(11)[2]},
                    {"txn": 10, "line": reply(10)[1], "reply": reply(10)[2]}]
    rows = [{"user": "alice", "idx": i, **tx(10 + i)._asdict()} for i in range(2)]

    with going(store.load_account, "alice") as loaded:
        find = server.receives(OpMsg("find", "accounts"))
        assert find.doc["filter"] == {"_id": "alice"}
        assert find.doc["limit"] == 1
        find.ok(cursor={"id": 0, "firstBatch": [stored], "ns": "daytrade.accounts"})

        find = server.receives(OpMsg("find", "transactions"))
        assert find.doc["filter"] == {"user": "alice", "idx": {"$lt": 2}}
        assert dict(find.doc["sort"]) == {"user": 1, "idx": 1}
        find.ok(cursor={"id": 0, "firstBatch": rows, "ns": "daytrade.transactions"})

        find = server.receives(OpMsg("find", "replies"))
        assert find.doc["filter"] == {"user": "alice", "txn": {"$lte": 11}}
        assert dict(find.doc["sort"]) == {"txn": -1}
        assert find.doc["limit"] == 16
        find.ok(cursor={"id": 0, "firstBatch": newest_first, "ns": "daytrade.replies"})

    assert loaded().transactions == [tx(10), tx(11)]
    assert list(loaded().recent) == [reply(10), reply(11)]
    assert loaded().cash == 500


def test_an_account_that_never_answered_a_state_changing_command_asks_for_no_replies(
        server, store):
    stored = {"_id": "bob", "version": 1, "active": False, "state": idle_account("bob").to_doc()}

    with going(store.load_account, "bob") as loaded:
        find = server.receives(OpMsg("find", "accounts"))
        find.ok(cursor={"id": 0, "firstBatch": [stored], "ns": "daytrade.accounts"})

    assert loaded().recent == idle_account("bob").recent


def test_events_stream_through_a_sorted_cursor_and_get_more(server, store):
    first, second = command_event(1, "amy", 1), command_event(2, "amy", 2)

    def as_doc(event):
        return {k: v for k, v in event._asdict().items() if v is not None}

    with going(lambda: list(store.iter_events())) as streamed:
        find = server.receives(OpMsg("find", "events"))
        assert dict(find.doc["sort"]) == {"txn": 1, "user": 1, "seq": 1, "server": 1}
        assert find.doc["batchSize"] == 1_000
        find.ok(cursor={"id": 77, "firstBatch": [as_doc(first)], "ns": "daytrade.events"})
        more = server.receives(OpMsg("getMore", 77))
        more.ok(cursor={"id": 0, "nextBatch": [as_doc(second)], "ns": "daytrade.events"})

    assert streamed() == [first, second]


def test_reserving_above_a_floor_is_a_max_then_an_increment(server, store):
    with going(store.reserve_txns, 10, floor=1_000) as reserved:
        lift = server.receives(OpMsg("findAndModify", "counters"))
        assert lift.doc["query"] == {"_id": "txn"}
        assert lift.doc["update"] == {"$max": {"value": 1_000}}
        assert lift.doc["upsert"] is True
        assert lift.doc["writeConcern"] == MAJORITY_JOURNALED
        lift.ok(value={"_id": "txn", "value": 1_000}, lastErrorObject={"n": 1})

        take = server.receives(OpMsg("findAndModify", "counters"))
        assert take.doc["update"] == {"$inc": {"value": 10}}
        assert take.doc["new"] is True
        take.ok(value={"_id": "txn", "value": 1_010}, lastErrorObject={"n": 1})

    assert reserved() == 1_001


def test_the_highest_txn_is_the_newest_event_by_the_txn_index_then_the_counter(server, store):
    with going(store.max_txn) as highest:
        find = server.receives(OpMsg("find", "events"))
        assert find.doc["filter"] == {}
        assert dict(find.doc["sort"]) == {"txn": -1}
        assert find.doc["limit"] == 1
        find.ok(cursor={"id": 0, "firstBatch": [{"txn": 77}], "ns": "daytrade.events"})

        find = server.receives(OpMsg("find", "counters"))
        assert find.doc["filter"] == {"_id": "txn"}
        find.ok(cursor={"id": 0, "firstBatch": [{"_id": "txn", "value": 60}],
                        "ns": "daytrade.counters"})

    assert highest() == 77
