"""The embedded journal: each shard's records and snapshots in SQLite files of their own (WAL).

One file per shard keeps a shard's group commit from ever waiting on another shard's, and the
snapshot in a second file lets a snapshot be written from another thread without taking the
journal's write lock. The directory (credentials, partition count) is one file shared by all.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import TypeVar

from server.store.journal_port import (
    JournalFenced,
    LoadedAccount,
    PartitionMismatch,
    Snapshot,
    SnapshotAccount,
    TxChunk,
)

#: How long a writer (of any process) waits for another's write lock before failing (ms).
BUSY_TIMEOUT_MS = 30_000
#: NORMAL survives a crash of the process but not of the machine (the WAL is fsynced only at
#: checkpoints); OFF is refused, as `append` promises durability.
SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")
#: Rows fetched per round when streaming records: a replay never holds the whole journal.
FETCH_SIZE = 256
WAL_RETRY_S = 0.005
PRIVATE_MODE = 0o600
_T = TypeVar("_T")

_JOURNAL_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records ("
    " seq INTEGER PRIMARY KEY, max_txn INTEGER NOT NULL, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS records_max_txn ON records(max_txn)",
)
_APPEND = "INSERT INTO records (seq, max_txn, data) VALUES (?, ?, ?)"
# Both are bare max() queries, which SQLite answers from one end of a b-tree (the rowid and the
# max_txn index); wrapping them in coalesce() would turn that into a full scan.
_LAST_SEQ = "SELECT max(seq) FROM records"
_MAX_TXN = "SELECT max(max_txn) FROM records"
_RECORDS = "SELECT seq, data FROM records WHERE seq > ? ORDER BY seq"

_SNAPSHOT_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS accounts ("
    " user TEXT PRIMARY KEY, doc BLOB NOT NULL, tx_count INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tx_chunks ("
    " user TEXT NOT NULL, start INTEGER NOT NULL, data BLOB NOT NULL,"
    " PRIMARY KEY (user, start)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)",
)
_SNAPSHOT_SEQ = "SELECT value FROM meta WHERE key = 'seq'"
_SET_SNAPSHOT_SEQ = (
    "INSERT INTO meta (key, value) VALUES ('seq', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_UPSERT_ACCOUNT = (
    "INSERT INTO accounts (user, doc, tx_count) VALUES (?, ?, ?) "
    "ON CONFLICT (user) DO UPDATE SET doc = excluded.doc, tx_count = excluded.tx_count"
)
_PUT_CHUNK = "INSERT OR REPLACE INTO tx_chunks (user, start, data) VALUES (?, ?, ?)"
# One pass over both tables in (user, start) order: the chunk table's key is that order.
_LOAD_ACCOUNTS = (
    "SELECT a.user, a.doc, a.tx_count, c.start, c.data FROM accounts AS a "
    "LEFT JOIN tx_chunks AS c ON c.user = a.user AND c.start < a.tx_count "
    "ORDER BY a.user, c.start"
)

# The credentials table has the schema of the older store's (same file name), so that data keeps
# working; its meta table is shared too, with a key of our own.
_DIRECTORY_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS credentials (user TEXT PRIMARY KEY, hash TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)",
)
_PARTITIONS = "SELECT value FROM meta WHERE key = 'partitions'"
_SET_PARTITIONS = "INSERT INTO meta (key, value) VALUES ('partitions', ?)"
_SET_HASH = (
    "INSERT INTO credentials (user, hash) VALUES (?, ?) "
    "ON CONFLICT (user) DO UPDATE SET hash = excluded.hash"
)
_GET_HASH = "SELECT hash FROM credentials WHERE user = ?"


class SqliteJournal:
    """The `ShardJournal` port for shard `shard` in `data_dir`.

    Appends come from one thread (the commit thread) through a connection of their own; every
    read opens its own connection, so a reader in another thread never waits for an append's
    fsync (WAL readers take no lock a writer holds). Snapshots use a third connection on the
    snapshot file.
    """

    def __init__(self, data_dir: str | Path, shard: int, *, synchronous: str = "FULL") -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
        self.shard = shard
        self.synchronous = mode
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = journal_path(data_dir, shard)
        self.snapshot_path = data_dir / f"shard-{shard}.snapshot.sqlite"
        self._lock = threading.Lock()
        self._snapshot_lock = threading.Lock()
        self._conn = _open(self.path, mode, _JOURNAL_SCHEMA)
        try:
            # A snapshot needs no fsync of its own: the journal holds everything, and WAL keeps
            # each snapshot whole, so a crash can only leave the one before it (more to replay).
            # So the journal's fsyncs never wait behind megabytes of snapshot on the one disk
            # (not shown to matter: p99 at 11,000 commands/s was 180-310 ms either way).
            self._snapshot_conn = _open(self.snapshot_path, "NORMAL", _SNAPSHOT_SCHEMA)
        except BaseException:
            self._conn.close()
            raise

    # -- the journal ---------------------------------------------------------------------------

    def last_seq(self) -> int:
        with closing(_connect(self.path)) as conn:
            return conn.execute(_LAST_SEQ).fetchone()[0] or 0

    def max_txn(self) -> int:
        with closing(_connect(self.path)) as conn:
            return conn.execute(_MAX_TXN).fetchone()[0] or 0

    def append(self, seq: int, max_txn: int, data: bytes) -> None:
        with self._lock:
            try:
                _in_write_transaction(self._conn, lambda conn: conn.execute(
                    _APPEND, (seq, max_txn, data)))
            except sqlite3.IntegrityError as error:
                # Only the key is unique; any other constraint failing is a caller's bug.
                if error.sqlite_errorcode != sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
                    raise
                raise JournalFenced(
                    f"shard {self.shard}: journal record {seq} already exists in {self.path}; "
                    "another writer of this shard is running, this one must stop") from error

    def records(self, after_seq: int = 0) -> Iterator[tuple[int, bytes]]:
        """Streamed from one read transaction, which starts at the first `next()`: records
        appended after that are not seen (call again for them)."""
        conn = _connect(self.path)
        try:
            conn.execute("BEGIN")
            cursor = conn.execute(_RECORDS, (after_seq,))
            while rows := cursor.fetchmany(FETCH_SIZE):
                yield from rows
        finally:
            # Also runs when the caller drops the iterator part way (generator close).
            conn.close()

    # -- snapshots -----------------------------------------------------------------------------

    def write_snapshot(self, seq: int, accounts: list[SnapshotAccount],
                       chunks: list[TxChunk]) -> None:
        def write(conn: sqlite3.Connection) -> None:
            stored = conn.execute(_SNAPSHOT_SEQ).fetchone()
            if stored is not None and stored[0] is not None and seq <= stored[0]:
                return
            conn.executemany(_UPSERT_ACCOUNT, ((a.user, a.doc, a.tx_count) for a in accounts))
            conn.executemany(_PUT_CHUNK, ((c.user, c.start, c.data) for c in chunks))
            conn.execute(_SET_SNAPSHOT_SEQ, (seq,))

        with self._snapshot_lock:
            _in_write_transaction(self._snapshot_conn, write)

    def load_snapshot(self) -> Snapshot | None:
        """The stored snapshot, read in one transaction.

        A chunk holds records `start ..` of its user, but how many is only known to the codec,
        so chunks are returned in `start` order and trusted to be contiguous; what is checked is
        that an account with records has a chunk starting at record 0.
        """
        with closing(_connect(self.snapshot_path)) as conn:
            conn.execute("BEGIN")
            row = conn.execute(_SNAPSHOT_SEQ).fetchone()
            if row is None or row[0] is None:
                return None
            seq = row[0]
            loaded: list[LoadedAccount] = []
            current: LoadedAccount | None = None
            for user, doc, tx_count, start, data in conn.execute(_LOAD_ACCOUNTS):
                if current is None or current.user != user:
                    current = LoadedAccount(user, doc, tx_count, [])
                    loaded.append(current)
                    if tx_count > 0 and start != 0:
                        raise ValueError(
                            f"shard {self.shard} snapshot {seq}: {user!r} has {tx_count} "
                            f"transaction records but no chunk starting at record 0 "
                            f"(first: {start}) in {self.snapshot_path}")
                if data is not None:
                    current.chunks.append(data)
            return Snapshot(seq, loaded)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        with self._snapshot_lock:
            self._snapshot_conn.close()


def journal_path(data_dir: Path, shard: int) -> Path:
    """The file of shard `shard`'s journal records in `data_dir`."""
    return data_dir / f"shard-{shard}.journal.sqlite"


class SqliteDirectory:
    """The `Directory` port on `data_dir/daytrade.sqlite`, shared by every process of the data.

    The file may be one an older daytrade made (tables accounts, transactions, audit_log, ...):
    those are left alone (see `has_legacy_tables`).
    """

    def __init__(self, data_dir: str | Path, *, synchronous: str = "FULL") -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "daytrade.sqlite"
        self._lock = threading.Lock()
        self._conn = _open(self.path, mode, _DIRECTORY_SCHEMA)

    def claim_partitions(self, count: int) -> None:
        def claim(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(_PARTITIONS).fetchone()
            if row is None:
                conn.execute(_SET_PARTITIONS, (count,))
                return None
            return row[0]

        # IMMEDIATE: two processes making new data at once must not both see "none recorded".
        with self._lock:
            made_with = _in_write_transaction(self._conn, claim)
        if made_with is not None and made_with != count:
            raise PartitionMismatch(made_with, count)

    def partitions(self) -> int | None:
        with self._lock:
            row = self._conn.execute(_PARTITIONS).fetchone()
        return None if row is None else row[0]

    def get_password_hash(self, user: str) -> str | None:
        with self._lock:
            row = self._conn.execute(_GET_HASH, (user,)).fetchone()
        return None if row is None else row[0]

    def set_password_hash(self, user: str, password_hash: str) -> None:
        with self._lock:
            _in_write_transaction(self._conn, lambda conn: conn.execute(
                _SET_HASH, (user, password_hash)))

    def has_legacy_tables(self) -> bool:
        """Whether the file holds an older daytrade's store (its `accounts` table)."""
        with self._lock:
            return self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'accounts'",
            ).fetchone() is not None

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# -- connections ---------------------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: transactions are begun explicitly. check_same_thread=False: a
    # connection is used under a lock by whichever thread holds it (or by one iterator).
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000)


def _open(path: Path, synchronous: str, schema: tuple[str, ...]) -> sqlite3.Connection:
    """The writing connection of a file: made private, in WAL mode, with its schema."""
    _create_private(path)
    conn = _connect(path)
    try:
        _enable_wal(conn)
        conn.execute(f"PRAGMA synchronous = {synchronous}")

        def create(conn: sqlite3.Connection) -> None:
            for statement in schema:
                conn.execute(statement)

        _in_write_transaction(conn, create)
    except BaseException:
        conn.close()
        raise
    # SQLite gives its -wal and -shm files the database file's mode; this covers a database
    # made private only now (an older file) whose side files already existed.
    for side in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        _make_private(side)
    return conn


def _create_private(path: Path) -> None:
    """Create `path` empty with mode 0600 if it does not exist (SQLite takes an empty file as a
    new database), else make sure an existing file of ours is 0600.

    The data dir may be shared, and credentials live beside the journals.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        _make_private(path)
        return
    try:
        os.fchmod(fd, PRIVATE_MODE)  # os.open's mode is reduced by the umask; this is not
        os.fsync(fd)
    finally:
        os.close(fd)
    # A new file's directory entry is durable only once the directory is fsynced.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _make_private(path: Path) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_IMODE(info.st_mode) != PRIVATE_MODE and info.st_uid == os.geteuid():
        os.chmod(path, PRIVATE_MODE)


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL, waiting out other processes doing the same on a fresh file.

    The switch takes an exclusive lock without calling the busy handler, so it is retried here.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        else:
            if mode.lower() == "wal":
                return
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(f"cannot switch to WAL mode (still {mode})")
        time.sleep(WAL_RETRY_S)


def _in_write_transaction(conn: sqlite3.Connection,
                          work: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run `work(conn)` in one IMMEDIATE transaction and return its result.

    IMMEDIATE takes the write lock up front (through the busy handler), where a deferred
    transaction that turns into a writer while another process writes fails at once.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # a failed COMMIT may leave it open
            conn.execute("ROLLBACK")
        raise
    return result
