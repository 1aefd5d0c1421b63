"""The journal contract: every adapter of `journal_port` (SQLite, MongoDB emulated and real)
keeps the same ordering, fencing and snapshot promises, so the engine can rely on the port alone.
"""

from __future__ import annotations

import importlib
import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from server.store.journal_port import (
    Directory,
    JournalFenced,
    PartitionMismatch,
    ShardJournal,
    SnapshotAccount,
    TxChunk,
)
from server.store.sqlite_journal import SqliteDirectory, SqliteJournal

MONGO_URL = os.environ.get("DAYTRADE_MONGO_URL")

JournalFactory = Callable[[int], ShardJournal]
DirectoryFactory = Callable[[], Directory]


def _mongo_journal_module():
    # Written alongside this suite; until it lands, the Mongo params skip instead of failing.
    try:
        return importlib.import_module("server.store.mongo_journal")
    except ModuleNotFoundError as error:
        if error.name != "server.store.mongo_journal":
            raise
        pytest.skip("server.store.mongo_journal does not exist yet")


class _Store:
    """Makes journals and directories over one underlying store, and closes them all."""

    def __init__(self, make_journal: JournalFactory, make_directory: DirectoryFactory) -> None:
        self._make_journal = make_journal
        self._make_directory = make_directory
        self.opened: list[ShardJournal | Directory] = []

    def journal(self, shard: int) -> ShardJournal:
        journal = self._make_journal(shard)
        self.opened.append(journal)
        return journal

    def directory(self) -> Directory:
        directory = self._make_directory()
        self.opened.append(directory)
        return directory

    def close_one(self, opened: ShardJournal | Directory) -> None:
        """Close `opened` now (the port does not promise that a second close is harmless)."""
        self.opened.remove(opened)
        opened.close()

    def close(self) -> None:
        for opened in self.opened:
            opened.close()


@pytest.fixture(params=[
    "sqlite",
    pytest.param("mongomock", marks=pytest.mark.emulated),
    pytest.param("mongo", marks=[
        pytest.mark.mongo,
        pytest.mark.skipif(not MONGO_URL, reason="set DAYTRADE_MONGO_URL to a MongoDB server"),
    ]),
])
def store(request, tmp_path) -> Iterator[_Store]:
    if request.param == "sqlite":
        made = _Store(lambda shard: SqliteJournal(tmp_path, shard),
                      lambda: SqliteDirectory(tmp_path))
        yield made
        made.close()
    elif request.param == "mongomock":
        module = _mongo_journal_module()
        client = request.getfixturevalue("mongomock_client")
        url, database = "mongodb://emulated", "daytrade_test"
        made = _Store(
            lambda shard: module.MongoJournal(url, shard, client=client, database=database),
            lambda: module.MongoDirectory(url, client=client, database=database))
        yield made
        made.close()
    else:
        module = _mongo_journal_module()
        import pymongo

        database = f"daytrade_test_{uuid.uuid4().hex[:12]}"
        # A client of our own for the drop: an adapter may close a client it was given.
        client = pymongo.MongoClient(MONGO_URL)
        made = _Store(lambda shard: module.MongoJournal(MONGO_URL, shard, database=database),
                      lambda: module.MongoDirectory(MONGO_URL, database=database))
        try:
            yield made
        finally:
            made.close()
            client.drop_database(database)
            client.close()


@pytest.fixture
def journal_factory(store: _Store) -> JournalFactory:
    """`make(shard)`: a journal of `shard`; two of the same shard model two writers."""
    return store.journal


@pytest.fixture
def directory_factory(store: _Store) -> DirectoryFactory:
    return store.directory


def _snapshot_by_user(journal: ShardJournal) -> dict[str, tuple[bytes, int, list[bytes]]]:
    snapshot = journal.load_snapshot()
    assert snapshot is not None
    return {a.user: (a.doc, a.tx_count, a.chunks) for a in snapshot.accounts}


# -- the journal -----------------------------------------------------------------------------------


def test_an_empty_journal_has_no_records_no_txn_and_no_snapshot(journal_factory):
    journal = journal_factory(0)

    assert journal.shard == 0
    assert journal.last_seq() == 0
    assert list(journal.records()) == []
    assert journal.max_txn() == 0
    assert journal.load_snapshot() is None


def test_appended_records_come_back_in_seq_order_with_their_bytes(journal_factory):
    journal = journal_factory(0)
    payloads = [bytes(range(256)), b"\x00", b"second", "\u00e9t\u00e9".encode()]
    for seq, data in enumerate(payloads, start=1):
        journal.append(seq, seq * 10, data)

    assert list(journal.records()) == list(enumerate(payloads, start=1))


def test_last_seq_is_the_highest_appended(journal_factory):
    journal = journal_factory(0)
    for seq in range(1, 6):
        journal.append(seq, 0, b"r")

    assert journal.last_seq() == 5


def test_records_after_a_seq_return_only_the_tail(journal_factory):
    journal = journal_factory(0)
    for seq in range(1, 8):
        journal.append(seq, 0, f"r{seq}".encode())

    assert list(journal.records(after_seq=4)) == [(5, b"r5"), (6, b"r6"), (7, b"r7")]
    assert list(journal.records(after_seq=7)) == []


def test_records_stream_past_many_rows(journal_factory):
    journal = journal_factory(0)
    for seq in range(1, 1_001):
        journal.append(seq, seq, seq.to_bytes(4, "big"))

    seqs = [seq for seq, _ in journal.records()]

    assert seqs == list(range(1, 1_001))


def test_max_txn_is_the_highest_over_all_records(journal_factory):
    journal = journal_factory(0)
    for seq, max_txn in enumerate([7, 0, 42, 13, 0], start=1):
        journal.append(seq, max_txn, b"r")

    assert journal.max_txn() == 42


def test_max_txn_is_zero_when_no_record_has_a_txn(journal_factory):
    journal = journal_factory(0)
    journal.append(1, 0, b"r")

    assert journal.max_txn() == 0


def test_appending_an_existing_seq_is_fenced_and_keeps_the_first_record(journal_factory):
    journal = journal_factory(0)
    journal.append(1, 5, b"first")

    with pytest.raises(JournalFenced):
        journal.append(1, 99, b"second")

    assert list(journal.records()) == [(1, b"first")]
    assert journal.max_txn() == 5


def test_a_second_writer_of_the_same_shard_appending_a_written_seq_is_fenced(journal_factory):
    first, second = journal_factory(3), journal_factory(3)
    first.append(1, 1, b"a")
    first.append(2, 2, b"b")

    with pytest.raises(JournalFenced):
        second.append(2, 9, b"impostor")

    assert list(first.records()) == [(1, b"a"), (2, b"b")]


def test_a_second_journal_of_the_same_shard_sees_the_first_ones_records(journal_factory):
    first, second = journal_factory(1), journal_factory(1)
    first.append(1, 4, b"a")

    assert second.last_seq() == 1
    assert list(second.records()) == [(1, b"a")]
    assert second.max_txn() == 4


def test_shards_are_independent(journal_factory):
    zero, one = journal_factory(0), journal_factory(1)
    zero.append(1, 10, b"zero-1")
    one.append(1, 20, b"one-1")
    zero.append(2, 11, b"zero-2")

    assert list(zero.records()) == [(1, b"zero-1"), (2, b"zero-2")]
    assert list(one.records()) == [(1, b"one-1")]
    assert (zero.last_seq(), one.last_seq()) == (2, 1)
    assert (zero.max_txn(), one.max_txn()) == (11, 20)


def test_a_reopened_journal_sees_everything(store, journal_factory):
    journal = journal_factory(0)
    journal.append(1, 3, b"a")
    journal.append(2, 8, b"b")
    journal.write_snapshot(2, [SnapshotAccount("alice", b"doc", 0)], [])
    store.close_one(journal)

    reopened = journal_factory(0)

    assert list(reopened.records()) == [(1, b"a"), (2, b"b")]
    assert (reopened.last_seq(), reopened.max_txn()) == (2, 8)
    assert reopened.load_snapshot().seq == 2
    reopened.append(3, 9, b"c")
    assert reopened.last_seq() == 3


def test_a_large_record_round_trips(journal_factory):
    journal = journal_factory(0)
    data = os.urandom(1024 * 1024)
    journal.append(1, 1, data)
    journal.append(2, 2, b"after")

    assert list(journal.records()) == [(1, data), (2, b"after")]


# -- snapshots -------------------------------------------------------------------------------------


def test_a_written_snapshot_loads_with_its_accounts_and_chunks(journal_factory):
    journal = journal_factory(0)
    journal.write_snapshot(
        5,
        [SnapshotAccount("alice", b"alice-doc", 3), SnapshotAccount("bob", b"bob-doc", 1)],
        [TxChunk("alice", 0, b"a0-1"), TxChunk("alice", 2, b"a2"), TxChunk("bob", 0, b"b0")])

    snapshot = journal.load_snapshot()

    assert snapshot.seq == 5
    assert _snapshot_by_user(journal) == {
        "alice": (b"alice-doc", 3, [b"a0-1", b"a2"]),
        "bob": (b"bob-doc", 1, [b"b0"]),
    }


def test_an_account_without_transactions_loads_with_no_chunks(journal_factory):
    journal = journal_factory(0)
    journal.write_snapshot(1, [SnapshotAccount("carol", b"doc", 0)], [])

    assert _snapshot_by_user(journal) == {"carol": (b"doc", 0, [])}


def test_a_snapshot_without_accounts_still_records_its_seq(journal_factory):
    journal = journal_factory(0)
    journal.write_snapshot(4, [], [])

    snapshot = journal.load_snapshot()

    assert (snapshot.seq, snapshot.accounts) == (4, [])


def test_a_later_snapshot_updates_only_the_listed_accounts(journal_factory):
    journal = journal_factory(0)
    journal.write_snapshot(
        2, [SnapshotAccount("alice", b"alice-v1", 1), SnapshotAccount("bob", b"bob-v1", 1)],
        [TxChunk("alice", 0, b"a0"), TxChunk("bob", 0, b"b0")])

    journal.write_snapshot(7, [SnapshotAccount("alice", b"alice-v2", 2)],
                           [TxChunk("alice", 1, b"a1")])

    assert journal.load_snapshot().seq == 7
    assert _snapshot_by_user(journal) == {
        "alice": (b"alice-v2", 2, [b"a0", b"a1"]),
        "bob": (b"bob-v1", 1, [b"b0"]),
    }


def test_chunks_load_in_start_order_whatever_order_they_were_written_in(journal_factory):
    journal = journal_factory(0)
    journal.write_snapshot(1, [SnapshotAccount("alice", b"doc", 30)],
                           [TxChunk("alice", 20, b"c20"), TxChunk("alice", 0, b"c0"),
                            TxChunk("alice", 10, b"c10")])

    assert _snapshot_by_user(journal)["alice"][2] == [b"c0", b"c10", b"c20"]


@pytest.mark.parametrize("stale_seq", [3, 5])
def test_a_snapshot_not_above_the_stored_seq_is_ignored(journal_factory, stale_seq):
    journal = journal_factory(0)
    journal.write_snapshot(5, [SnapshotAccount("alice", b"new", 1)], [TxChunk("alice", 0, b"a0")])

    journal.write_snapshot(stale_seq, [SnapshotAccount("alice", b"old", 2),
                                       SnapshotAccount("dave", b"dave", 0)],
                           [TxChunk("alice", 0, b"stale"), TxChunk("alice", 1, b"stale")])

    assert journal.load_snapshot().seq == 5
    assert _snapshot_by_user(journal) == {"alice": (b"new", 1, [b"a0"])}


def test_chunks_past_tx_count_are_not_returned(journal_factory):
    journal = journal_factory(0)
    journal.write_snapshot(
        3, [SnapshotAccount("alice", b"doc", 2)],
        [TxChunk("alice", 0, b"a0-1"), TxChunk("alice", 2, b"a2"), TxChunk("alice", 5, b"a5")])

    assert _snapshot_by_user(journal)["alice"] == (b"doc", 2, [b"a0-1"])


def test_snapshots_of_shards_are_independent(journal_factory):
    zero, one = journal_factory(0), journal_factory(1)
    zero.write_snapshot(9, [SnapshotAccount("alice", b"a", 0)], [])

    assert one.load_snapshot() is None
    one.write_snapshot(2, [SnapshotAccount("bob", b"b", 0)], [])
    assert zero.load_snapshot().seq == 9
    assert set(_snapshot_by_user(zero)) == {"alice"}
    assert set(_snapshot_by_user(one)) == {"bob"}


def test_a_snapshot_is_seen_by_another_journal_of_the_shard(journal_factory):
    writer, reader = journal_factory(2), journal_factory(2)
    writer.write_snapshot(6, [SnapshotAccount("erin", b"doc", 1)], [TxChunk("erin", 0, b"e0")])

    assert reader.load_snapshot().seq == 6
    assert _snapshot_by_user(reader) == {"erin": (b"doc", 1, [b"e0"])}


# -- the directory ---------------------------------------------------------------------------------


def test_new_data_has_no_partition_count_until_one_is_claimed(directory_factory):
    directory = directory_factory()
    assert directory.partitions() is None

    directory.claim_partitions(4)

    assert directory.partitions() == 4


def test_claiming_the_same_partition_count_again_is_fine(directory_factory):
    directory_factory().claim_partitions(4)
    directory = directory_factory()

    directory.claim_partitions(4)

    assert directory.partitions() == 4


def test_claiming_another_partition_count_raises_a_mismatch_naming_both(directory_factory):
    directory_factory().claim_partitions(4)
    directory = directory_factory()

    with pytest.raises(PartitionMismatch) as raised:
        directory.claim_partitions(8)

    assert (raised.value.made_with, raised.value.asked) == (4, 8)
    assert "4" in str(raised.value) and "8" in str(raised.value)
    assert directory.partitions() == 4


def test_a_password_hash_is_stored_and_replaced(directory_factory):
    directory = directory_factory()
    directory.set_password_hash("alice", "scrypt$one")
    directory.set_password_hash("bob", "scrypt$bob")

    directory.set_password_hash("alice", "scrypt$two")

    assert directory.get_password_hash("alice") == "scrypt$two"
    assert directory.get_password_hash("bob") == "scrypt$bob"


def test_an_unknown_user_has_no_password_hash(directory_factory):
    assert directory_factory().get_password_hash("nobody") is None


def test_a_reopened_directory_keeps_partitions_and_credentials(store, directory_factory):
    directory = directory_factory()
    directory.claim_partitions(2)
    directory.set_password_hash("alice", "scrypt$a")
    store.close_one(directory)

    reopened = directory_factory()

    assert reopened.partitions() == 2
    assert reopened.get_password_hash("alice") == "scrypt$a"
