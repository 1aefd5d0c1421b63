"""What MongoJournal and MongoDirectory send a real MongoDB server, seen on the wire by a scripted
server (mockupdb)."""

from __future__ import annotations

import pytest
from bson.int64 import Int64
from mockupdb import MockupDB, OpMsg, going
from pymongo.errors import InvalidOperation, WriteConcernError

from server.store.journal_port import (
    JournalFenced,
    LoadedAccount,
    PartitionMismatch,
    Snapshot,
    SnapshotAccount,
    TxChunk,
)
from server.store.mongo_journal import MongoDirectory, MongoJournal

#: pymongo 4.20 refuses servers older than wire version 9 (MongoDB 4.4); 21 is MongoDB 7.0.
HELLO = {"ismaster": True, "minWireVersion": 0, "maxWireVersion": 21}
WAIT_S = 10
MAJORITY_JOURNALED = {"w": "majority", "j": True}
SHARD = 2
BASE = SHARD << 40  # the packed _id of seq 0 of shard 2


@pytest.fixture
def server():
    mock = MockupDB(auto_ismaster=HELLO, request_timeout=WAIT_S)
    mock.run()
    yield mock
    mock.stop()


def url(server: MockupDB) -> str:
    return f"mongodb://127.0.0.1:{server.port}"


def open_journal(server: MockupDB, **options) -> tuple[MongoJournal, list[OpMsg]]:
    """A MongoJournal of shard 2 on the scripted server, and the createIndexes it sent."""
    with going(MongoJournal, url(server), SHARD, **options) as opened:
        requests = []
        for _ in range(3):
            request = server.receives()
            assert request.command_name == "createIndexes"
            request.ok()
            requests.append(request)
    return opened(), requests


@pytest.fixture
def journal(server):
    opened, _ = open_journal(server)
    yield opened
    opened.close()


@pytest.fixture
def directory(server):
    opened = MongoDirectory(url(server))
    yield opened
    opened.close()


def raised(call, *args) -> BaseException | None:
    """What `call(*args)` raised, or None (mockupdb re-raises errors as `type(str(error))`)."""
    try:
        call(*args)
    except Exception as error:
        return error
    return None


def cursor(namespace: str, docs: list[dict], cursor_id: int = 0) -> dict:
    return {"id": cursor_id, "firstBatch": docs, "ns": f"daytrade.{namespace}"}


def write_command(request: OpMsg, name: str, collection: str) -> dict:
    doc = request.doc
    assert request.command_name == name
    assert doc[name] == collection
    assert doc["$db"] == "daytrade"
    assert doc["writeConcern"] == MAJORITY_JOURNALED
    return doc


def upserted(request: OpMsg) -> None:
    updates = request.doc["updates"]
    request.ok(n=len(updates), nModified=0,
               upserted=[{"index": i, "_id": u["q"]["_id"]} for i, u in enumerate(updates)])


def test_opening_creates_the_max_txn_version_and_chunk_indexes(server):
    opened, requests = open_journal(server)
    opened.close()

    indexes = {r.doc["createIndexes"]: [dict(i["key"]) for i in r.doc["indexes"]]
               for r in requests}

    assert indexes == {
        "journal": [{"shard": 1, "max_txn": -1}],
        "snapshot_accounts": [{"shard": 1, "user": 1, "seq": -1}],
        "snapshot_chunks": [{"shard": 1, "user": 1, "start": 1}],
    }


def test_an_append_is_one_insert_of_one_document_with_the_packed_id(server, journal):
    with going(journal.append, 7, 42, b"\x00record") as appended:
        insert = server.receives()
        doc = write_command(insert, "insert", "journal")
        (record,) = doc["documents"]
        assert record == {"_id": BASE | 7, "shard": 2, "seq": 7, "max_txn": 42,
                          "data": b"\x00record"}
        assert isinstance(record["_id"], Int64)
        assert list(record) == ["_id", "shard", "seq", "max_txn", "data"]
        insert.ok(n=1)
    appended()

    # Nothing else was sent: the next request is the next call's.
    with going(journal.last_seq) as last:
        server.receives(OpMsg("find", "journal")).ok(
            cursor=cursor("journal", [{"_id": Int64(BASE | 7)}]))
    assert last() == 7


def test_a_duplicate_key_reply_to_an_append_is_journal_fenced(server, journal):
    with going(raised, journal.append, 3, 0, b"r") as error:
        server.receives(OpMsg("insert", "journal")).ok(n=0, writeErrors=[{
            "index": 0, "code": 11000,
            "errmsg": "E11000 duplicate key error collection: daytrade.journal index: _id_"}])

    assert isinstance(error(), JournalFenced)
    assert "record 3 of shard 2" in str(error())


def test_an_unmet_write_concern_on_an_append_is_not_mistaken_for_a_fence(server, journal):
    with going(raised, journal.append, 3, 0, b"r") as error:
        server.receives(OpMsg("insert", "journal")).ok(n=1, writeConcernError={
            "code": 64, "errmsg": "waiting for replication timed out"})

    assert isinstance(error(), WriteConcernError)


def test_a_configured_write_concern_is_sent(server):
    opened, _ = open_journal(server, write_concern="1", journal=False)
    try:
        with going(opened.append, 1, 0, b"r"):
            insert = server.receives(OpMsg("insert", "journal"))
            assert insert.doc["writeConcern"] == {"w": 1, "j": False}
            insert.ok(n=1)
    finally:
        opened.close()


def test_the_tail_is_a_find_of_the_shards_id_range_in_id_order_streamed(server, journal):
    with going(lambda: list(journal.records(after_seq=5))) as streamed:
        find = server.receives(OpMsg("find", "journal"))
        assert find.doc["filter"] == {"_id": {"$gt": BASE | 5, "$lt": (SHARD + 1) << 40}}
        assert all(isinstance(bound, Int64) for bound in find.doc["filter"]["_id"].values())
        assert dict(find.doc["sort"]) == {"_id": 1}
        assert find.doc["batchSize"] == 1_000
        find.ok(cursor=cursor("journal", [{"_id": Int64(BASE | 6), "data": b"six"}], 77))
        more = server.receives(OpMsg("getMore", 77))
        more.ok(cursor={"id": 0, "nextBatch": [{"_id": Int64(BASE | 7), "data": b"seven"}],
                        "ns": "daytrade.journal"})

    assert streamed() == [(6, b"six"), (7, b"seven")]


def test_the_last_seq_is_the_top_of_the_shards_id_range(server, journal):
    with going(journal.last_seq) as last:
        find = server.receives(OpMsg("find", "journal"))
        assert find.doc["filter"] == {"_id": {"$gt": BASE, "$lt": (SHARD + 1) << 40}}
        assert dict(find.doc["sort"]) == {"_id": -1}
        assert find.doc["limit"] == 1
        find.ok(cursor=cursor("journal", []))

    assert last() == 0


def test_the_max_txn_is_a_sorted_limit_one_query_on_the_shard(server, journal):
    with going(journal.max_txn) as highest:
        find = server.receives(OpMsg("find", "journal"))
        assert find.doc["filter"] == {"shard": SHARD}
        assert dict(find.doc["sort"]) == {"max_txn": -1}
        assert find.doc["limit"] == 1
        find.ok(cursor=cursor("journal", [{"max_txn": 99}]))

    assert highest() == 99


def test_a_snapshot_writes_chunks_then_versions_then_the_seq_then_prunes(server, journal):
    accounts = [SnapshotAccount("alice", b"alice-doc", 3), SnapshotAccount("bob", b"bob-doc", 0)]
    chunks = [TxChunk("alice", 2, b"a2"), TxChunk("alice", 0, b"a0-1")]

    with going(journal.write_snapshot, 9, accounts, chunks) as written:
        meta = server.receives(OpMsg("find", "snapshot_meta"))
        assert meta.doc["filter"] == {"_id": SHARD}
        meta.ok(cursor=cursor("snapshot_meta", [{"_id": SHARD, "seq": 5}]))

        chunk_writes = server.receives()
        doc = write_command(chunk_writes, "update", "snapshot_chunks")
        assert doc["ordered"] is False
        assert [u["q"] for u in doc["updates"]] == [
            {"_id": {"shard": SHARD, "user": "alice", "start": 0}},
            {"_id": {"shard": SHARD, "user": "alice", "start": 2}}]
        assert all(u["upsert"] for u in doc["updates"])
        assert [(u["u"]["end"], u["u"]["data"]) for u in doc["updates"]] == [
            (2, b"a0-1"), (3, b"a2")]
        upserted(chunk_writes)

        versions = server.receives()
        doc = write_command(versions, "update", "snapshot_accounts")
        assert doc["ordered"] is False
        assert doc["updates"][0]["q"] == {"_id": {"shard": SHARD, "user": "alice", "seq": 9}}
        assert list(doc["updates"][0]["q"]["_id"]) == ["shard", "user", "seq"]
        assert doc["updates"][0]["u"] == {
            "_id": {"shard": SHARD, "user": "alice", "seq": 9}, "shard": SHARD,
            "user": "alice", "seq": 9, "tx_count": 3, "doc": b"alice-doc"}
        assert doc["updates"][1]["u"]["user"] == "bob"
        upserted(versions)

        flip = server.receives()
        doc = write_command(flip, "update", "snapshot_meta")
        (update,) = doc["updates"]
        assert update == {"q": {"_id": SHARD}, "u": {"$max": {"seq": 9}}, "multi": False,
                          "upsert": True}
        flip.ok(n=1, nModified=1)

        prune = server.receives()
        doc = write_command(prune, "delete", "snapshot_accounts")
        assert doc["deletes"] == [{"q": {"shard": SHARD, "user": {"$in": ["alice", "bob"]},
                                         "seq": {"$lt": 9}}, "limit": 0}]
        prune.ok(n=2)
    written()


def test_a_snapshot_not_above_the_stored_seq_sends_no_write(server, journal):
    with going(journal.write_snapshot, 9, [SnapshotAccount("alice", b"doc", 0)], []) as written:
        server.receives(OpMsg("find", "snapshot_meta")).ok(
            cursor=cursor("snapshot_meta", [{"_id": SHARD, "seq": 9}]))
    written()

    with going(journal.max_txn):
        server.receives(OpMsg("find", "journal")).ok(cursor=cursor("journal", []))


def test_a_load_reads_the_seq_then_versions_then_chunks_then_the_seq_again(server, journal):
    versions = [
        {"user": "alice", "tx_count": 3, "doc": b"alice@9"},
        {"user": "alice", "tx_count": 1, "doc": b"alice@4"},  # older: not taken
        {"user": "bob", "tx_count": 0, "doc": b"bob@2"},
    ]
    chunks = [{"user": "alice", "start": 0, "end": 2, "data": b"a0-1"},
              {"user": "alice", "start": 2, "end": 3, "data": b"a2"},
              {"user": "alice", "start": 3, "end": None, "data": b"past tx_count"}]

    with going(journal.load_snapshot) as loaded:
        server.receives(OpMsg("find", "snapshot_meta")).ok(
            cursor=cursor("snapshot_meta", [{"_id": SHARD, "seq": 9}]))

        find = server.receives(OpMsg("find", "snapshot_accounts"))
        assert find.doc["filter"] == {"shard": SHARD, "seq": {"$lte": 9}}
        assert dict(find.doc["sort"]) == {"user": 1, "seq": -1}
        assert find.doc["batchSize"] == 1_000
        find.ok(cursor=cursor("snapshot_accounts", versions))

        find = server.receives(OpMsg("find", "snapshot_chunks"))
        assert find.doc["filter"] == {"shard": SHARD}
        assert dict(find.doc["sort"]) == {"user": 1, "start": 1}
        find.ok(cursor=cursor("snapshot_chunks", chunks))

        server.receives(OpMsg("find", "snapshot_meta")).ok(
            cursor=cursor("snapshot_meta", [{"_id": SHARD, "seq": 9}]))

    assert loaded() == Snapshot(9, [LoadedAccount("alice", b"alice@9", 3, [b"a0-1", b"a2"]),
                                    LoadedAccount("bob", b"bob@2", 0, [])])


def test_a_load_starts_again_when_the_seq_moved_while_it_read(server, journal):
    with going(journal.load_snapshot) as loaded:
        for seq in (9, 12):
            server.receives(OpMsg("find", "snapshot_meta")).ok(
                cursor=cursor("snapshot_meta", [{"_id": SHARD, "seq": seq}]))
            server.receives(OpMsg("find", "snapshot_accounts")).ok(
                cursor=cursor("snapshot_accounts", [
                    {"user": "alice", "tx_count": 0, "doc": f"alice@{seq}".encode()}]))
            server.receives(OpMsg("find", "snapshot_chunks")).ok(
                cursor=cursor("snapshot_chunks", []))
        server.receives(OpMsg("find", "snapshot_meta")).ok(
            cursor=cursor("snapshot_meta", [{"_id": SHARD, "seq": 12}]))

    assert loaded() == Snapshot(12, [LoadedAccount("alice", b"alice@12", 0, [])])


def test_claiming_partitions_inserts_then_compares_on_a_duplicate_key(server, directory):
    with going(raised, directory.claim_partitions, 8) as error:
        insert = server.receives()
        doc = write_command(insert, "insert", "meta")
        assert doc["documents"] == [{"_id": "partitions", "value": 8}]
        insert.ok(n=0, writeErrors=[{"index": 0, "code": 11000,
                                     "errmsg": "E11000 duplicate key error"}])
        find = server.receives(OpMsg("find", "meta"))
        assert find.doc["filter"] == {"_id": "partitions"}
        find.ok(cursor=cursor("meta", [{"_id": "partitions", "value": 4}]))

    assert isinstance(error(), PartitionMismatch)
    assert "4 shards, not 8" in str(error())


def test_a_password_hash_is_an_upserted_replace_by_user(server, directory):
    with going(directory.set_password_hash, "alice", "scrypt$x"):
        update = server.receives()
        doc = write_command(update, "update", "credentials")
        assert doc["updates"] == [{"q": {"_id": "alice"}, "u": {"_id": "alice", "hash": "scrypt$x"},
                                   "multi": False, "upsert": True}]
        update.ok(n=1, nModified=0, upserted=[{"index": 0, "_id": "alice"}])


def test_closing_closes_the_client_the_adapter_made(server):
    opened, _ = open_journal(server)
    opened.close()

    with pytest.raises(InvalidOperation):
        opened.last_seq()
