"""The embedded store: one SQLite file in WAL mode shared by the gateway and every shard process.

A batch is one `BEGIN IMMEDIATE` transaction, so it is all or nothing; with `synchronous=FULL` the
commit returns only after the WAL is fsynced. Rows carry natural keys (user + index for
transactions, txn + user + seq + server for events, user + txn for replies), so a replayed batch
inserts nothing twice, and an account document is replaced only by a higher version.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import orjson

from server.shards.account import RECENT_REPLIES, Account
from server.shards.audit_events import AuditEvent, TxRecord
from server.store.documents import is_active, recent_replies
from server.store.port import Batch

#: How long a writer waits for another process's write lock before failing (ms).
BUSY_TIMEOUT_MS = 30_000
WAL_CHECKPOINT_PAGES = 20_000  # ~80 MB of WAL between checkpoints
#: Rows fetched per round when streaming audit events or accounts.
FETCH_SIZE = 1_000
_T = TypeVar("_T")
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
WAL_RETRY_S = 0.005

# Every table is written in the order rows arrive, so that a commit dirties few pages: events are
# clustered by their (txn, user, seq, server) order, which is also their identity (an event's txn
# never changes, so a replayed event collides with itself); a per-user index would cost a random
# page per user and batch, and per-user DUMPLOG is rare enough to filter a scan instead. `user` is
# '' for an event without one (a valid user id is never empty): key columns must be NOT NULL.
# Transactions are rowid rows with a small unique index on (user, idx) for loading and replays.
# Replies are clustered by (user, txn): a load reads a user's newest from one leaf, and the rows
# of a user's commands in one batch share a page.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    user TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    active INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS accounts_active ON accounts(user) WHERE active;
CREATE TABLE IF NOT EXISTS transactions (
    user TEXT NOT NULL,
    idx INTEGER NOT NULL,
    txn INTEGER NOT NULL,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    symbol TEXT,
    shares INTEGER NOT NULL,
    price INTEGER,
    cash_delta INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS transactions_user_idx ON transactions(user, idx);
CREATE TABLE IF NOT EXISTS events (
    kind TEXT NOT NULL,
    txn INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    server TEXT NOT NULL,
    user TEXT NOT NULL,
    command TEXT,
    symbol TEXT,
    funds INTEGER,
    filename TEXT,
    price INTEGER,
    quote_time INTEGER,
    cryptokey TEXT,
    action TEXT,
    message TEXT,
    PRIMARY KEY (txn, user, seq, server)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS replies (
    user TEXT NOT NULL,
    txn INTEGER NOT NULL,
    line TEXT NOT NULL,
    reply TEXT NOT NULL,
    PRIMARY KEY (user, txn)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS credentials (
    user TEXT PRIMARY KEY,
    hash TEXT NOT NULL
);
"""

_EVENT_COLUMNS = ", ".join(AuditEvent._fields)
_INSERT_EVENT = (
    f"INSERT OR IGNORE INTO events ({_EVENT_COLUMNS}) "
    f"VALUES ({', '.join('?' * len(AuditEvent._fields))})"
)
_SELECT_EVENTS = f"SELECT {_EVENT_COLUMNS} FROM events"
_USER_COLUMN = AuditEvent._fields.index("user")

_TX_COLUMNS = ", ".join(TxRecord._fields)
_INSERT_TX = (
    f"INSERT OR IGNORE INTO transactions (user, idx, {_TX_COLUMNS}) "
    f"VALUES (?, ?, {', '.join('?' * len(TxRecord._fields))})"
)
_SELECT_TXS = f"SELECT {_TX_COLUMNS} FROM transactions WHERE user = ? ORDER BY idx"

# A replayed batch rewrites the same row.
_INSERT_REPLY = "INSERT OR REPLACE INTO replies (user, txn, line, reply) VALUES (?, ?, ?, ?)"
_SELECT_REPLIES = (
    f"SELECT txn, line, reply FROM replies WHERE user = ? ORDER BY txn DESC LIMIT {RECENT_REPLIES}"
)
# Two seeks on the primary key: the txn of the user's oldest reply still kept, then the range
# below it. NULL (nothing deleted) while the user has no more than RECENT_REPLIES rows.
_PRUNE_REPLIES = (
    "DELETE FROM replies WHERE user = ?1 AND txn < (SELECT txn FROM replies WHERE user = ?1 "
    f"ORDER BY txn DESC LIMIT 1 OFFSET {RECENT_REPLIES - 1})"
)

_UPSERT_ACCOUNT = (
    "INSERT INTO accounts (user, version, doc, active) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (user) DO UPDATE SET "
    "version = excluded.version, doc = excluded.doc, active = excluded.active "
    "WHERE excluded.version > accounts.version"
)

# One statement, so atomic: the counter moves to max(counter, floor) + count.
_RESERVE_TXNS = (
    "INSERT INTO meta (key, value) VALUES ('txn', :floor + :count) "
    "ON CONFLICT (key) DO UPDATE SET value = max(value, :floor) + :count "
    "RETURNING value"
)

# One statement, so one snapshot; max(txn) is the last entry of the events' primary key.
_MAX_TXN = (
    "SELECT max(coalesce((SELECT max(txn) FROM events), 0), "
    "coalesce((SELECT value FROM meta WHERE key = 'txn'), 0))"
)



def _dumps(doc: dict[str, Any]) -> str:
    """An account document as JSON text (orjson: the document is rewritten on every commit)."""
    return orjson.dumps(doc).decode()


_loads = orjson.loads
_make_tx = TxRecord._make
_make_event = AuditEvent._make


def _event_row(event: AuditEvent) -> tuple[Any, ...]:
    if event.user is None:
        return event._replace(user="")
    if not event.user:
        raise ValueError("an audit event's user is a non-empty id or None")
    return event


def _event_from_row(row: tuple[Any, ...]) -> AuditEvent:
    if row[_USER_COLUMN]:
        return _make_event(row)
    return _make_event(row)._replace(user=None)


def _account_row(doc: dict[str, Any]) -> tuple[str, int, str, int]:
    return doc["user"], doc["version"], _dumps(doc), 1 if is_active(doc) else 0


def _account(doc: dict[str, Any], txs: list[tuple[Any, ...]],
             newest_replies: list[tuple[int, str, str]]) -> Account:
    return Account.from_doc(doc, list(map(_make_tx, txs)), recent_replies(doc, newest_replies))


class SqliteStore:
    """The `Store` port on one SQLite file; each process opens its own instance.

    Safe to call from several threads (one lock around the connection); `iter_events` and
    `load_active_accounts` read through a connection of their own, a consistent snapshot.
    """

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
        self.path = Path(path)
        self.synchronous = mode
        self._lock = threading.Lock()
        # Writers of all processes take this file lock around a write transaction: a blocked
        # writer wakes the moment the lock is free, where SQLite's own busy handler sleeps in
        # steps of up to 100 ms, which made shards sharing one file wait on each other's
        # commits for far longer than the commits took.
        self._writer_fd = os.open(f"{self.path}.writer", os.O_RDWR | os.O_CREAT, 0o600)
        self._conn = self._connect()
        with self._lock:
            self._write(_create_schema)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves. The module's implicit BEGIN is
        # DEFERRED, and a deferred transaction that turns into a writer while another process
        # writes fails with SQLITE_BUSY at once instead of waiting for the lock.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000, cached_statements=64)
        try:
            _enable_wal(conn)
        except BaseException:
            conn.close()
            raise
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        # Checkpoint seldom: account, reply and transaction pages are rewritten by commit after
        # commit, and a rare checkpoint copies each hot page into the database file once.
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        return conn

    def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `work(conn)` in one IMMEDIATE transaction (the caller holds the lock)."""
        conn = self._conn
        fcntl.flock(self._writer_fd, fcntl.LOCK_EX)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT may leave it open
                    conn.execute("ROLLBACK")
                raise
        finally:
            fcntl.flock(self._writer_fd, fcntl.LOCK_UN)
        return result

    # -- writes ------------------------------------------------------------------------------

    def commit_batch(self, batch: Batch) -> None:
        """Write the whole batch in one transaction; returns after the commit is durable."""
        if not batch:
            return
        events, transactions, accounts = batch.events, batch.transactions, batch.accounts
        replies = batch.replies

        def write(conn: sqlite3.Connection) -> None:
            # Audit, transactions and replies before the documents, the same order as the MongoDB
            # adapter (here it only matters for which statement a failure interrupts: none survive).
            if events:
                conn.executemany(_INSERT_EVENT, map(_event_row, events))
            if transactions:
                conn.executemany(_INSERT_TX, ((user, idx, *rec) for user, idx, rec in transactions))
            if replies:
                conn.executemany(_INSERT_REPLY, replies)
                # Keep each user's newest RECENT_REPLIES only: the pages are already dirty, and a
                # smaller table makes the inserts cheaper than the deletes cost (measured).
                conn.executemany(_PRUNE_REPLIES, [(user,) for user in {r[0] for r in replies}])
            if accounts:
                conn.executemany(_UPSERT_ACCOUNT, map(_account_row, accounts))

        with self._lock:
            self._write(write)

    def reserve_txns(self, count: int, floor: int = 0) -> int:
        """Reserve `count` txns above `floor` and above all reserved before; returns the first."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        with self._lock:
            last = self._write(lambda conn: conn.execute(
                _RESERVE_TXNS, {"floor": floor, "count": count}).fetchone()[0])
        return last - count + 1

    def max_txn(self) -> int:
        """The highest txn in the audit log or reserved by `reserve_txns`; 0 if none."""
        with self._lock:
            return self._conn.execute(_MAX_TXN).fetchone()[0]

    def set_password_hash(self, user: str, password_hash: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO credentials (user, hash) VALUES (?, ?) "
                "ON CONFLICT (user) DO UPDATE SET hash = excluded.hash",
                (user, password_hash),
            )

    # -- reads -------------------------------------------------------------------------------

    def load_account(self, user: str) -> Account | None:
        with self._lock:
            conn = self._conn
            # One read transaction, so the document, its transactions and its replies are the
            # same commit's.
            conn.execute("BEGIN")
            try:
                row = conn.execute("SELECT doc FROM accounts WHERE user = ?", (user,)).fetchone()
                if row is None:
                    return None
                txs = conn.execute(_SELECT_TXS, (user,)).fetchall()
                replies = conn.execute(_SELECT_REPLIES, (user,)).fetchall()
            finally:
                conn.execute("COMMIT")
        return _account(_loads(row[0]), txs, replies)

    def account_exists(self, user: str) -> bool:
        with self._lock:
            row = self._conn.execute("SELECT 1 FROM accounts WHERE user = ?", (user,)).fetchone()
        return row is not None

    def get_password_hash(self, user: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT hash FROM credentials WHERE user = ?", (user,)).fetchone()
        return None if row is None else row[0]

    def load_active_accounts(self) -> Iterator[Account]:
        """Accounts with a pending entry or a trigger, each with its transactions and replies,
        streamed."""
        with closing(self._connect()) as conn:
            conn.execute("BEGIN")
            try:
                accounts = conn.execute("SELECT doc FROM accounts WHERE active ORDER BY user")
                for (doc_text,) in _fetch_all(accounts):
                    doc = _loads(doc_text)
                    key = (doc["user"],)
                    txs = conn.execute(_SELECT_TXS, key).fetchall()
                    replies = conn.execute(_SELECT_REPLIES, key).fetchall()
                    yield _account(doc, txs, replies)
            finally:
                conn.execute("COMMIT")

    def iter_events(self, user: str | None = None) -> Iterator[AuditEvent]:
        """Audit events ordered by (txn, user, seq), streamed from one snapshot of the log."""
        with closing(self._connect()) as conn:
            if user is None:
                rows = conn.execute(f"{_SELECT_EVENTS} ORDER BY txn, user, seq, server")
            else:
                rows = conn.execute(
                    f"{_SELECT_EVENTS} WHERE user = ? ORDER BY txn, seq, server", (user,))
            yield from map(_event_from_row, _fetch_all(rows))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._writer_fd >= 0:
                os.close(self._writer_fd)
                self._writer_fd = -1


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


def _create_schema(conn: sqlite3.Connection) -> None:
    # Statement by statement: executescript() would commit the enclosing transaction first.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def _fetch_all(cursor: sqlite3.Cursor) -> Iterable[tuple[Any, ...]]:
    """The rows of `cursor`, fetched FETCH_SIZE at a time."""
    while rows := cursor.fetchmany(FETCH_SIZE):
        yield from rows
