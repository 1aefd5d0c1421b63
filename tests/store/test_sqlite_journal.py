"""What only the SQLite journal promises: its files and modes, its pragmas, surviving a kill -9 and
a torn WAL, and the thread and process rules the contract suite cannot express.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from server.store.journal_port import JournalFenced, SnapshotAccount, TxChunk
from server.store.sqlite_journal import _MAX_TXN, SqliteDirectory, SqliteJournal

REPO = Path(__file__).resolve().parents[2]
#: A generous bound for anything a subprocess or thread must do; never a timing assertion.
WAIT_S = 120


@pytest.fixture
def journal(tmp_path) -> Iterator[SqliteJournal]:
    opened = SqliteJournal(tmp_path, 0)
    yield opened
    opened.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# -- files and pragmas -----------------------------------------------------------------------------


def test_the_journal_snapshot_and_directory_files_are_private_whatever_the_umask(tmp_path):
    old_umask = os.umask(0)
    try:
        journal = SqliteJournal(tmp_path, 3)
        directory = SqliteDirectory(tmp_path)
        journal.append(1, 1, b"r")
        journal.write_snapshot(1, [SnapshotAccount("alice", b"doc", 0)], [])
        directory.set_password_hash("alice", "scrypt$a")
    finally:
        os.umask(old_umask)
    try:
        made = sorted(path.name for path in tmp_path.iterdir())
        for base in ("shard-3.journal.sqlite", "shard-3.snapshot.sqlite", "daytrade.sqlite"):
            assert {base, f"{base}-wal", f"{base}-shm"} <= set(made)
        assert {name: _mode(tmp_path / name) for name in made} == dict.fromkeys(made, 0o600)
    finally:
        journal.close()
        directory.close()


def test_both_files_are_in_wal_mode_the_journal_with_synchronous_full(journal):
    for path in (journal.path, journal.snapshot_path):
        with closing(sqlite3.connect(path)) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # synchronous is a setting of each connection, so it is read from the adapter's own.
    assert journal._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # a snapshot is derived from the journal: a crash may lose the newest, never tear it
    assert journal._snapshot_conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_synchronous_normal_can_be_asked_for_and_off_is_refused(tmp_path):
    journal = SqliteJournal(tmp_path, 0, synchronous="normal")
    try:
        assert journal._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        journal.close()
    with pytest.raises(ValueError, match="synchronous"):
        SqliteJournal(tmp_path, 0, synchronous="OFF")


def test_max_txn_is_read_from_its_index(journal):
    plan = " ".join(row[3] for row in journal._conn.execute(f"EXPLAIN QUERY PLAN {_MAX_TXN}"))
    assert "USING COVERING INDEX records_max_txn" in plan


# -- crashes ---------------------------------------------------------------------------------------

_APPEND_FOREVER = """
import sys
from server.store.sqlite_journal import SqliteJournal
journal = SqliteJournal(sys.argv[1], 0)
for seq in range(1, 1_000_001):
    journal.append(seq, seq, bytes([seq % 256]) * (seq * 37 % 9_000))
    print(seq, flush=True)
"""


def test_a_kill_9_while_appending_loses_no_acknowledged_record(tmp_path):
    wanted = 300
    child = _python(_APPEND_FOREVER, str(tmp_path))
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in child.stdout:
            lines.put(line)
        lines.put(None)  # end of output: the child is gone

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    printed: list[int] = []
    try:
        while len(printed) < wanted:
            line = lines.get(timeout=WAIT_S)
            assert line is not None, f"the child stopped early: {child.stderr.read()}"
            printed.append(int(line))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=WAIT_S)
        reader.join(timeout=WAIT_S)
    finally:
        child.kill()
        child.wait(timeout=WAIT_S)
    # What the child printed between our last read and its death counts as acknowledged too.
    while (line := lines.get_nowait()) is not None:
        printed.append(int(line))
    assert child.returncode == -signal.SIGKILL

    reopened = SqliteJournal(tmp_path, 0)
    try:
        seqs = [seq for seq, _ in reopened.records()]
    finally:
        reopened.close()

    assert printed == list(range(1, len(printed) + 1))
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= len(printed)


def _crash_image(journal: SqliteJournal, into: Path) -> Path:
    """Copy the journal's database and WAL as a machine crash would leave them (the -shm index
    is left behind: SQLite rebuilds it from the WAL, checking every frame's checksum)."""
    into.mkdir()
    for suffix in ("", "-wal"):
        shutil.copyfile(f"{journal.path}{suffix}", into / f"{journal.path.name}{suffix}")
    return into / f"{journal.path.name}-wal"


@pytest.mark.parametrize(("damage", "survivors"), [
    ("torn last frame", 5),
    ("bad checksum in the last frame", 5),
    ("garbage after the last frame", 6),
])
def test_a_damaged_wal_tail_loses_only_the_last_transaction(tmp_path, damage, survivors):
    journal = SqliteJournal(tmp_path / "live", 0)
    try:
        for seq in range(1, 6):
            journal.append(seq, seq, f"r{seq}".encode())
        # Larger than a page, so its transaction is several frames, the last its commit frame.
        journal.append(6, 6, os.urandom(3 * 4096))
        page_size = journal._conn.execute("PRAGMA page_size").fetchone()[0]
        wal = _crash_image(journal, tmp_path / "crashed")
    finally:
        journal.close()
    frame = 24 + page_size
    size = wal.stat().st_size
    assert size > 32 and (size - 32) % frame == 0  # the live WAL was never checkpointed
    if damage == "torn last frame":
        os.truncate(wal, size - frame // 2)
    elif damage == "bad checksum in the last frame":
        with open(wal, "r+b") as file:
            file.seek(size - page_size // 2)
            byte = file.read(1)
            file.seek(size - page_size // 2)
            file.write(bytes([byte[0] ^ 0xFF]))
    else:
        with open(wal, "ab") as file:
            file.write(os.urandom(frame + 1_000))

    reopened = SqliteJournal(tmp_path / "crashed", 0)
    try:
        records = list(reopened.records())
        assert [seq for seq, _ in records] == list(range(1, survivors + 1))
        assert records[:5] == [(seq, f"r{seq}".encode()) for seq in range(1, 6)]
        # The lost record was never acknowledged; the writer that restarts appends it again.
        reopened.append(survivors + 1, 0, b"after the crash")
        assert reopened.last_seq() == survivors + 1
    finally:
        reopened.close()


# -- threads and processes -------------------------------------------------------------------------


def test_a_snapshot_written_while_another_thread_appends_leaves_both_whole(journal):
    errors: list[BaseException] = []

    def guarded(work):
        def run() -> None:
            try:
                work()
            except BaseException as error:  # reported by the test thread
                errors.append(error)
        return run

    def append() -> None:
        for seq in range(1, 301):
            journal.append(seq, seq, seq.to_bytes(2, "big") * 50)

    def snapshot() -> None:
        for seq in range(1, 31):
            journal.write_snapshot(seq, [SnapshotAccount(f"user{seq % 7}", b"doc", seq)],
                                   [TxChunk(f"user{seq % 7}", 0, b"chunk")])

    threads = [threading.Thread(target=guarded(append)), threading.Thread(target=guarded(snapshot))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT_S)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert [seq for seq, _ in journal.records()] == list(range(1, 301))
    snapshot_loaded = journal.load_snapshot()
    assert snapshot_loaded.seq == 30
    assert len(snapshot_loaded.accounts) == 7


def test_appends_do_not_wait_for_a_snapshot_writer(journal):
    with closing(sqlite3.connect(journal.snapshot_path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # holds the snapshot file's write lock
        try:
            journal.append(1, 1, b"r")
        finally:
            other.execute("ROLLBACK")

    assert journal.last_seq() == 1


def test_reads_do_not_wait_for_an_uncommitted_append(journal):
    journal.append(1, 1, b"committed")
    with closing(sqlite3.connect(journal.path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO records (seq, max_txn, data) VALUES (2, 99, x'00')")
        try:
            assert list(journal.records()) == [(1, b"committed")]
            assert (journal.last_seq(), journal.max_txn()) == (1, 1)
        finally:
            other.execute("ROLLBACK")


def test_records_are_read_from_one_transaction(journal):
    for seq in range(1, 4):
        journal.append(seq, 0, b"before")
    records = journal.records()
    first = next(records)

    journal.append(4, 0, b"during")

    assert [first, *records] == [(1, b"before"), (2, b"before"), (3, b"before")]
    assert journal.last_seq() == 4


_SECOND_WRITER = """
import sys
from server.store.journal_port import JournalFenced
from server.store.sqlite_journal import SqliteJournal
journal = SqliteJournal(sys.argv[1], 0)
journal.append(3, 3, b"from the second process")
print("appended 3", flush=True)
try:
    journal.append(2, 2, b"impostor")
except JournalFenced as error:
    print("fenced:", error, flush=True)
journal.close()
"""


def test_a_second_process_on_the_shard_is_fenced_on_an_existing_seq(journal, tmp_path):
    journal.append(1, 1, b"one")
    journal.append(2, 2, b"two")

    child = _python(_SECOND_WRITER, str(tmp_path))
    try:
        out, err = child.communicate(timeout=WAIT_S)
    finally:
        child.kill()
        child.wait(timeout=WAIT_S)

    assert child.returncode == 0, err
    assert out.splitlines()[0] == "appended 3"
    assert out.splitlines()[1].startswith("fenced: shard 0: journal record 2 already exists")
    with pytest.raises(JournalFenced, match="shard 0.*record 3"):
        journal.append(3, 3, b"from the first process")
    assert list(journal.records()) == [(1, b"one"), (2, b"two"), (3, b"from the second process")]


# -- snapshots -------------------------------------------------------------------------------------


def test_a_snapshot_account_with_records_but_no_first_chunk_is_refused(journal):
    journal.write_snapshot(1, [SnapshotAccount("alice", b"doc", 5)], [TxChunk("alice", 2, b"c2")])

    with pytest.raises(ValueError, match="'alice' has 5 transaction records"):
        journal.load_snapshot()


# -- the directory ---------------------------------------------------------------------------------


def test_the_directory_coexists_with_an_older_store_in_the_same_file(tmp_path):
    old_umask = os.umask(0o022)
    try:
        with closing(sqlite3.connect(tmp_path / "daytrade.sqlite")) as legacy:
            legacy.executescript("""
                CREATE TABLE accounts (user TEXT PRIMARY KEY, version INTEGER NOT NULL,
                                       doc TEXT NOT NULL, active INTEGER NOT NULL);
                CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                CREATE TABLE credentials (user TEXT PRIMARY KEY, hash TEXT NOT NULL);
                INSERT INTO accounts VALUES ('alice', 1, '{}', 1);
                INSERT INTO meta VALUES ('event_txn', 41);
                INSERT INTO credentials VALUES ('alice', 'scrypt$legacy');
            """)
    finally:
        os.umask(old_umask)

    directory = SqliteDirectory(tmp_path)
    try:
        assert directory.has_legacy_tables()
        assert directory.get_password_hash("alice") == "scrypt$legacy"
        assert directory.partitions() is None
        directory.claim_partitions(2)
        assert directory.partitions() == 2
    finally:
        directory.close()
    assert _mode(tmp_path / "daytrade.sqlite") == 0o600
    with closing(sqlite3.connect(tmp_path / "daytrade.sqlite")) as raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'event_txn'").fetchone() == (41,)
        assert raw.execute("SELECT user FROM accounts").fetchall() == [("alice",)]


def test_a_new_directory_has_no_legacy_tables(tmp_path):
    directory = SqliteDirectory(tmp_path)
    try:
        assert not directory.has_legacy_tables()
    finally:
        directory.close()
