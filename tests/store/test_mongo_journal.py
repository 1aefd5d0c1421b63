"""MongoJournal and MongoDirectory beyond the contract: the `_id` packing and each shard's range,
what a snapshot write cut short by a crash leaves (and that loads ignore it), pruning.

Each test runs on mongomock and, when DAYTRADE_MONGO_URL is set, on a real server (a fresh
database per test, dropped after).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from server.store.journal_port import JournalFenced, PartitionMismatch, SnapshotAccount, TxChunk
from server.store.mongo_journal import (
    MAX_SEQ,
    MAX_SHARD,
    PRUNE_USERS_PER_DELETE,
    MongoDirectory,
    MongoJournal,
)

MONGO_URL = os.environ.get("DAYTRADE_MONGO_URL")


class Backend:
    """Opens journals and directories on one database, gives raw access to it, closes them."""

    def __init__(self, url: str, client: Any, database: str) -> None:
        self.url, self.client, self.database = url, client, database
        self.db = client.get_database(database)
        self.opened: list[MongoJournal | MongoDirectory] = []

    def journal(self, shard: int = 0) -> MongoJournal:
        opened = MongoJournal(self.url, shard, client=self.client, database=self.database)
        self.opened.append(opened)
        return opened

    def directory(self) -> MongoDirectory:
        opened = MongoDirectory(self.url, client=self.client, database=self.database)
        self.opened.append(opened)
        return opened

    def close(self) -> None:
        for opened in self.opened:
            opened.close()


@pytest.fixture(params=[
    pytest.param("mongomock", marks=pytest.mark.emulated),
    pytest.param("mongo", marks=[
        pytest.mark.mongo,
        pytest.mark.skipif(not MONGO_URL, reason="set DAYTRADE_MONGO_URL to a MongoDB server"),
    ]),
])
def backend(request) -> Iterator[Backend]:
    if request.param == "mongomock":
        made = Backend("mongodb://emulated", request.getfixturevalue("mongomock_client"),
                       "daytrade_test")
        yield made
        made.close()
    else:
        import pymongo

        database = f"daytrade_test_{uuid.uuid4().hex[:12]}"
        client = pymongo.MongoClient(MONGO_URL, timeoutMS=10_000)
        made = Backend(MONGO_URL, client, database)
        try:
            yield made
        finally:
            made.close()
            client.drop_database(database)
            client.close()


class Crash(Exception):
    """The process dying at this point of a write."""


class CrashingCollection:
    """A collection whose `method` raises Crash, after doing the first `done` operations of a
    bulk write (or none, for other methods); everything else goes to the real collection."""

    def __init__(self, collection: Any, method: str, done: int = 0) -> None:
        self._collection, self._method, self._done = collection, method, done

    def __getattr__(self, name: str) -> Any:
        if name != self._method:
            return getattr(self._collection, name)

        def crash(operations: Any = None, *args: Any, **kwargs: Any) -> None:
            if name == "bulk_write" and self._done:
                self._collection.bulk_write(operations[:self._done], *args, **kwargs)
            raise Crash(f"{name} cut short")
        return crash


def crash_at(journal: MongoJournal, point: str) -> Callable[[], None]:
    """Make the next write_snapshot of `journal` die at `point`; returns the undo."""
    attribute, method, done = {
        "chunks": ("_chunks", "bulk_write", 0),
        "half the chunks": ("_chunks", "bulk_write", 1),
        "accounts": ("_versions", "bulk_write", 0),
        "half the accounts": ("_versions", "bulk_write", 1),
        "the meta flip": ("_meta", "update_one", 0),
    }[point]
    real = getattr(journal, attribute)
    setattr(journal, attribute, CrashingCollection(real, method, done))
    return lambda: setattr(journal, attribute, real)


def by_user(journal: MongoJournal) -> dict[str, tuple[bytes, int, list[bytes]]]:
    snapshot = journal.load_snapshot()
    assert snapshot is not None
    return {a.user: (a.doc, a.tx_count, a.chunks) for a in snapshot.accounts}


# -- the _id packing and shard ranges ----------------------------------------------------------


def test_a_record_id_packs_the_shard_above_the_seq(backend):
    backend.journal(3).append(7, 70, b"r")

    (stored,) = backend.db.journal.find()

    assert stored["_id"] == 3 << 40 | 7
    assert (stored["shard"], stored["seq"], stored["max_txn"]) == (3, 7, 70)
    assert bytes(stored["data"]) == b"r"


def test_the_last_seq_of_a_shard_is_its_own_even_beside_a_neighbour_at_its_range_edges(backend):
    zero, one, two = backend.journal(0), backend.journal(1), backend.journal(2)
    zero.append(MAX_SEQ, 1, b"zero-last")  # _id 2**40 - 1, the top of shard 0's range
    two.append(1, 2, b"two-first")  # _id 2**41 + 1, just above shard 1's range

    assert one.last_seq() == 0
    assert list(one.records()) == []
    assert one.max_txn() == 0
    one.append(1, 5, b"one-first")  # _id 2**40 + 1, just above shard 0's top
    one.append(2, 6, b"one-second")

    assert (zero.last_seq(), one.last_seq(), two.last_seq()) == (MAX_SEQ, 2, 1)
    assert list(zero.records()) == [(MAX_SEQ, b"zero-last")]
    assert list(one.records()) == [(1, b"one-first"), (2, b"one-second")]
    assert list(one.records(after_seq=1)) == [(2, b"one-second")]
    assert list(two.records()) == [(1, b"two-first")]


def test_a_seq_past_the_packing_or_below_one_is_refused_and_nothing_is_written(backend):
    journal = backend.journal(0)

    for seq in (0, -1, MAX_SEQ + 1, 1 << 41):
        with pytest.raises(ValueError, match="seq"):
            journal.append(seq, 0, b"r")

    assert backend.db.journal.count_documents({}) == 0
    assert backend.journal(1).last_seq() == 0


def test_records_after_the_last_possible_seq_are_none(backend):
    journal = backend.journal(0)
    journal.append(MAX_SEQ, 0, b"r")

    assert list(journal.records(after_seq=MAX_SEQ)) == []
    assert list(journal.records(after_seq=MAX_SEQ - 1)) == [(MAX_SEQ, b"r")]


@pytest.mark.parametrize("shard", [-1, MAX_SHARD + 1])
def test_a_shard_whose_ids_would_not_fit_an_int64_is_refused(backend, shard):
    with pytest.raises(ValueError, match="shard"):
        backend.journal(shard)


def test_the_highest_shard_packs_within_an_int64(backend):
    journal = backend.journal(MAX_SHARD)
    journal.append(MAX_SEQ, 1, b"r")

    assert journal.last_seq() == MAX_SEQ
    assert backend.db.journal.find_one()["_id"] == (1 << 63) - 1


def test_a_fenced_append_names_the_shard_and_the_seq(backend):
    backend.journal(4).append(9, 1, b"first")

    with pytest.raises(JournalFenced, match=r"record 9 of shard 4 .* another writer"):
        backend.journal(4).append(9, 2, b"second")


def test_the_same_seq_in_another_shard_is_not_fenced(backend):
    backend.journal(0).append(1, 1, b"zero")
    backend.journal(1).append(1, 1, b"one")

    assert backend.db.journal.count_documents({}) == 2


def test_opening_again_keeps_the_indexes_and_records(backend):
    backend.journal(0).append(1, 3, b"r")
    reopened = backend.journal(0)

    assert reopened.max_txn() == 3
    names = set(backend.db.journal.index_information())
    assert "shard_max_txn" in names


# -- snapshots cut short ----------------------------------------------------------------------


@pytest.fixture
def snapshotted(backend) -> MongoJournal:
    """A journal whose shard has a snapshot at seq 5: alice (2 records), bob (1)."""
    journal = backend.journal(0)
    journal.write_snapshot(5, [SnapshotAccount("alice", b"alice@5", 2),
                               SnapshotAccount("bob", b"bob@5", 1)],
                           [TxChunk("alice", 0, b"a0-1"), TxChunk("bob", 0, b"b0")])
    return journal


PREVIOUS = {"alice": (b"alice@5", 2, [b"a0-1"]), "bob": (b"bob@5", 1, [b"b0"])}
CRASH_POINTS = ["chunks", "half the chunks", "accounts", "half the accounts", "the meta flip"]


def write_at_9(journal: MongoJournal) -> None:
    journal.write_snapshot(9, [SnapshotAccount("alice", b"alice@9", 4),
                               SnapshotAccount("bob", b"bob@9", 2),
                               SnapshotAccount("carol", b"carol@9", 0)],
                           [TxChunk("alice", 2, b"a2-3"), TxChunk("bob", 1, b"b1")])


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_snapshot_cut_short_leaves_the_previous_one_loadable_whole(backend, snapshotted,
                                                                     point):
    undo = crash_at(snapshotted, point)
    with pytest.raises(Crash):
        write_at_9(snapshotted)
    undo()

    assert snapshotted.load_snapshot().seq == 5
    assert by_user(snapshotted) == PREVIOUS
    assert by_user(backend.journal(0)) == PREVIOUS  # a restarted process sees the same


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_writing_the_snapshot_again_after_a_crash_completes_it(backend, snapshotted, point):
    undo = crash_at(snapshotted, point)
    with pytest.raises(Crash):
        write_at_9(snapshotted)
    undo()

    write_at_9(backend.journal(0))

    assert snapshotted.load_snapshot().seq == 9
    assert by_user(snapshotted) == {"alice": (b"alice@9", 4, [b"a0-1", b"a2-3"]),
                                    "bob": (b"bob@9", 2, [b"b0", b"b1"]),
                                    "carol": (b"carol@9", 0, [])}


def test_versions_left_above_the_stored_seq_by_a_crash_are_not_loaded(snapshotted):
    undo = crash_at(snapshotted, "the meta flip")
    with pytest.raises(Crash):
        write_at_9(snapshotted)
    undo()

    # The restarted shard snapshots at a seq below the crashed one's, listing only alice.
    snapshotted.write_snapshot(7, [SnapshotAccount("alice", b"alice@7", 3)],
                               [TxChunk("alice", 2, b"a2")])

    assert by_user(snapshotted) == {"alice": (b"alice@7", 3, [b"a0-1", b"a2"]),
                                    "bob": (b"bob@5", 1, [b"b0"])}


def test_chunks_a_crash_left_at_starts_no_later_snapshot_reuses_are_skipped(snapshotted):
    # The crashed attempt, at seq 9, had cut alice's new records into two chunks: 2-3 and 4-5.
    undo = crash_at(snapshotted, "the meta flip")
    with pytest.raises(Crash):
        snapshotted.write_snapshot(9, [SnapshotAccount("alice", b"alice@9", 6)],
                                   [TxChunk("alice", 2, b"a2-3"), TxChunk("alice", 4, b"a4-5")])
    undo()

    # After the restart: records 2-4 at seq 8, then 5-7 at seq 12.
    snapshotted.write_snapshot(8, [SnapshotAccount("alice", b"alice@8", 5)],
                               [TxChunk("alice", 2, b"a2-4")])
    snapshotted.write_snapshot(12, [SnapshotAccount("alice", b"alice@12", 8)],
                               [TxChunk("alice", 5, b"a5-7")])

    assert by_user(snapshotted)["alice"] == (b"alice@12", 8, [b"a0-1", b"a2-4", b"a5-7"])


def test_chunks_without_a_known_end_are_all_taken_below_tx_count(backend):
    journal = backend.journal(0)
    # Chunks written without their account: their ends are unknown.
    journal.write_snapshot(3, [], [TxChunk("alice", 0, b"a0"), TxChunk("alice", 1, b"a1")])
    journal.write_snapshot(4, [SnapshotAccount("alice", b"doc", 2)], [])

    assert by_user(journal) == {"alice": (b"doc", 2, [b"a0", b"a1"])}


# -- pruning ----------------------------------------------------------------------------------


def versions(backend: Backend, user: str) -> list[int]:
    return sorted(v["seq"] for v in backend.db.snapshot_accounts.find({"user": user}))


def test_a_listed_users_older_versions_are_pruned_and_others_are_kept(backend, snapshotted):
    for seq in (6, 7, 8):
        snapshotted.write_snapshot(seq, [SnapshotAccount("alice", f"alice@{seq}".encode(), 2)],
                                   [])

    assert versions(backend, "alice") == [8]
    assert versions(backend, "bob") == [5]
    assert by_user(snapshotted) == {"alice": (b"alice@8", 2, [b"a0-1"]),
                                    "bob": (b"bob@5", 1, [b"b0"])}


def test_a_version_above_the_stored_seq_survives_pruning_until_superseded(backend, snapshotted):
    undo = crash_at(snapshotted, "the meta flip")
    with pytest.raises(Crash):
        write_at_9(snapshotted)
    undo()
    snapshotted.write_snapshot(7, [SnapshotAccount("bob", b"bob@7", 1)], [])

    assert versions(backend, "bob") == [7, 9]  # 5 pruned, 9 above the snapshot kept

    snapshotted.write_snapshot(10, [SnapshotAccount("bob", b"bob@10", 2)], [TxChunk("bob", 1,
                                                                                    b"b1")])
    assert versions(backend, "bob") == [10]


def test_pruning_many_users_takes_several_bounded_deletes(backend):
    journal = backend.journal(0)
    users = [f"user{i:04d}" for i in range(PRUNE_USERS_PER_DELETE + 7)]
    for seq in (1, 2):
        journal.write_snapshot(seq, [SnapshotAccount(u, f"{u}@{seq}".encode(), 0) for u in users],
                               [])

    assert backend.db.snapshot_accounts.count_documents({}) == len(users)
    assert by_user(journal)[users[-1]] == (f"{users[-1]}@2".encode(), 0, [])


def test_snapshots_of_other_shards_are_never_pruned(backend, snapshotted):
    other = backend.journal(1)
    other.write_snapshot(1, [SnapshotAccount("alice", b"other-alice", 0)], [])
    snapshotted.write_snapshot(9, [SnapshotAccount("alice", b"alice@9", 2)], [])

    assert by_user(other) == {"alice": (b"other-alice", 0, [])}


# -- the directory ----------------------------------------------------------------------------


def test_the_partition_count_is_one_document_claimed_by_an_insert(backend):
    backend.directory().claim_partitions(4)
    backend.directory().claim_partitions(4)

    assert list(backend.db.meta.find()) == [{"_id": "partitions", "value": 4}]
    with pytest.raises(PartitionMismatch, match="4 shards, not 8"):
        backend.directory().claim_partitions(8)


def test_a_partition_count_below_one_is_refused(backend):
    with pytest.raises(ValueError):
        backend.directory().claim_partitions(0)

    assert backend.directory().partitions() is None


def test_credentials_are_one_document_per_user(backend):
    directory = backend.directory()
    directory.set_password_hash("alice", "scrypt$1")
    directory.set_password_hash("alice", "scrypt$2")

    assert list(backend.db.credentials.find()) == [{"_id": "alice", "hash": "scrypt$2"}]
