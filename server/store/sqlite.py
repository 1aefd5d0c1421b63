"""The embedded store: one SQLite file in WAL mode shared by the gateway and every shard process.

A batch is one `BEGIN IMMEDIATE` transaction, so it is all or nothing; with `synchronous=FULL` the
commit returns only after the WAL is fsynced. A committed batch's key is recorded in the same
transaction, so a replayed batch writes nothing; transactions also carry natural keys (user +
index), and an account document is replaced only by a higher version.
"""

from __future__ import annotations

import fcntl
import functools
import itertools
import operator
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

# The audit log is appended in commit order (a rowid table with no index), so a commit writes
# only the pages at its end: a batch holds one command of each of many users (each user waits for
# its reply before sending the next), and any index in txn or user order put every event of a
# batch on a page of its own (clustering the events by txn cost 3 times the CPU of appending, and
# twice the commit time). Readers sort instead (SQLite's sorter, ~1 us an event), DUMPLOG being
# rare. An event's fields are one JSON array: binding 15 columns per row cost 4 times as much as
# binding its 4 sort columns and one value; the events of one command share a row (an array of
# such arrays, sorted by its first event: see _event_rows). `user` is '' for an event without one
# (a valid user id is never empty). The highest txn of the log is kept in `meta` ('event_txn'),
# as the log has no txn order to find it in. Replays are recognised by the batch key (`batches`).
# Transactions are rowid rows with a small unique index on (user, idx) for loading and replays.
# Replies are appended too (`reply_log`), and an account row lists the ids of its user's newest
# (`reply_ids`, a JSON array), which a load reads by id (ids come from blocks that each store
# reserves in `meta`, 'reply_id', so a commit's rows are made before it takes the write lock);
# replies clustered by (user, txn) made every command of a batch rewrite a page of its own, two
# thirds of the bytes a commit wrote (6.2 KB of WAL a command in a round-robin replay of
# final_2019; 2.2 KB without them).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    user TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    active INTEGER NOT NULL,
    reply_ids TEXT
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
CREATE TABLE IF NOT EXISTS audit_log (
    txn INTEGER NOT NULL,
    user TEXT NOT NULL,
    seq INTEGER NOT NULL,
    server TEXT NOT NULL,
    event BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    key TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reply_log (
    id INTEGER PRIMARY KEY,
    user TEXT NOT NULL,
    txn INTEGER NOT NULL,
    line TEXT NOT NULL,
    reply TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS credentials (
    user TEXT PRIMARY KEY,
    hash TEXT NOT NULL
);
"""

_INSERT_EVENTS = "INSERT INTO audit_log (txn, user, seq, server, event) VALUES "
_SELECT_EVENTS = "SELECT event FROM audit_log"
_TXN, _SEQ, _SERVER, _USER = (AuditEvent._fields.index(f) for f in ("txn", "seq", "server", "user"))
_RECORD_BATCH = "INSERT OR IGNORE INTO batches (key) VALUES (?)"
_RAISE_EVENT_TXN = (
    "INSERT INTO meta (key, value) VALUES ('event_txn', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)"
)
# The log of an older version of this module (clustered columns), moved over on open.
_OLD_EVENT_COLUMNS = ("kind", "txn", "seq", "timestamp", "server", "nullif(user, '')", "command",
                      "symbol", "funds", "filename", "price", "quote_time", "cryptokey", "action",
                      "message")
_MIGRATE_EVENTS = (
    "INSERT INTO audit_log (txn, user, seq, server, event) "
    f"SELECT txn, user, seq, server, json_array({', '.join(_OLD_EVENT_COLUMNS)}) FROM events "
    "ORDER BY txn, user, seq, server"
)

_TX_COLUMNS = ", ".join(TxRecord._fields)
_INSERT_TXS = f"INSERT OR IGNORE INTO transactions (user, idx, {_TX_COLUMNS}) VALUES "
_SELECT_TXS = f"SELECT {_TX_COLUMNS} FROM transactions WHERE user = ? ORDER BY idx"

# Each store instance takes reply ids from a block it reserves (`meta` 'reply_id'), so that a
# commit's rows are made before it takes the write lock; the floor covers files written before
# the counter existed.
_LAST_REPLY_ID = "SELECT coalesce(max(id), 0) FROM reply_log"
#: Reply ids reserved at a time (a block costs one small write transaction).
REPLY_IDS_PER_RESERVE = 65_536
_INSERT_REPLIES = "INSERT INTO reply_log (id, user, txn, line, reply) VALUES "
_SET_REPLY_IDS = "UPDATE accounts SET reply_ids = ? WHERE user = ?"
#: Users whose reply ids one statement reads (SQLite allows 32,766 parameters).
_USERS_PER_READ = 500
# Files of older versions kept replies clustered by (user, txn): moved into the log on open.
_MIGRATE_REPLIES = (
    "INSERT INTO reply_log (user, txn, line, reply) "
    "SELECT user, txn, line, reply FROM replies ORDER BY user, txn"
)
_MIGRATE_REPLY_IDS = (
    "UPDATE accounts SET reply_ids = (SELECT json_group_array(id) FROM (SELECT id FROM reply_log "
    f"WHERE reply_log.user = accounts.user ORDER BY id DESC LIMIT {RECENT_REPLIES}))"
)

# reply_ids NULL: the account's newest replies did not change in the batch.
_UPSERT_ACCOUNTS = "INSERT INTO accounts (user, version, doc, active, reply_ids) VALUES "
_UPSERT_ACCOUNTS_TAIL = (
    " ON CONFLICT (user) DO UPDATE SET "
    "version = excluded.version, doc = excluded.doc, active = excluded.active, "
    "reply_ids = coalesce(excluded.reply_ids, accounts.reply_ids) "
    "WHERE excluded.version > accounts.version"
)

# One statement, so atomic: the counter `key` moves to max(counter, floor) + count.
_RESERVE = (
    "INSERT INTO meta (key, value) VALUES (:key, :floor + :count) "
    "ON CONFLICT (key) DO UPDATE SET value = max(value, :floor) + :count "
    "RETURNING value"
)

# One statement, so one snapshot.
_MAX_TXN = (
    "SELECT max(coalesce((SELECT value FROM meta WHERE key = 'event_txn'), 0), "
    "coalesce((SELECT value FROM meta WHERE key = 'txn'), 0))"
)


#: Rows one INSERT statement carries: a multi-row VALUES list costs SQLite's per-statement work
#: (reset, halt, its allocations) once for all its rows, where executemany pays it for each row
#: (callgrind over a round-robin commit replay: 11.40G -> 10.61G instructions in all).
ROWS_PER_INSERT = 64


@functools.cache
def _multi_row_insert(head: str, width: int, rows: int, tail: str) -> str:
    values = f"({', '.join('?' * width)})"
    return f"{head}{', '.join([values] * rows)}{tail}"


def _multi_row_statements(head: str, rows: list[tuple[Any, ...]], tail: str = ""
                          ) -> list[tuple[str, list[Any]]]:
    """`head VALUES ... tail` statements with their parameters for `rows`, ROWS_PER_INSERT rows
    a statement (a remainder in powers of two, so that a few statement texts serve every
    batch)."""
    width = len(rows[0])
    chain = itertools.chain.from_iterable
    statements = []
    start = 0
    while start < len(rows):
        count = min(ROWS_PER_INSERT, 1 << ((len(rows) - start).bit_length() - 1))
        statements.append((_multi_row_insert(head, width, count, tail),
                           list(chain(rows[start:start + count]))))
        start += count
    return statements


_loads = orjson.loads
_make_tx = TxRecord._make
_make_event = AuditEvent._make


def _event_rows(events: Iterable[AuditEvent]) -> list[tuple[Any, ...]]:
    """Audit-log rows for `events`: the events of one command (consecutive, with the same txn,
    user and server and seqs following on) share a row whose value is a JSON array of them; any
    other event is a row of its own, its value the event's fields as one JSON array.

    A row sorts by its first event: seqs are the user's own counter, so no other event of the
    same txn and user falls between a row's first and last (events with seq <= 0, those of a
    user without an account, are never put together).
    """
    dumps = orjson.dumps
    rows: list[tuple[Any, ...]] = []
    group: list[tuple[Any, ...]] = []
    head: tuple[Any, ...] = ()
    last_seq = 0
    for event in events:
        user = event[_USER]
        if user is None:
            user = ""
        elif not user:
            raise ValueError("an audit event's user is a non-empty id or None")
        seq = event[_SEQ]
        if group and seq == last_seq + 1 and event[_TXN] == head[0] and user == head[1] \
                and event[_SERVER] == head[3]:
            group.append(tuple(event))
            last_seq = seq
            continue
        if group:
            rows.append((*head, dumps(group) if len(group) > 1 else dumps(group[0])))
            group = []
        head = (event[_TXN], user, seq, event[_SERVER])
        if seq > 0:
            group = [tuple(event)]
            last_seq = seq
        else:
            rows.append((*head, dumps(tuple(event))))
    if group:
        rows.append((*head, dumps(group) if len(group) > 1 else dumps(group[0])))
    return rows


def _events_of_rows(rows: Iterable[tuple[Any, ...]]) -> Iterator[AuditEvent]:
    for (value,) in rows:
        fields = _loads(value)
        if type(fields[0]) is list:  # a command's events
            yield from map(_make_event, fields)
        else:
            yield _make_event(fields)


def _account(doc: dict[str, Any], txs: list[tuple[Any, ...]],
             newest_replies: list[tuple[int, str, str]]) -> Account:
    return Account.from_doc(doc, list(map(_make_tx, txs)), recent_replies(doc, newest_replies))


def _newest_replies(conn: sqlite3.Connection, reply_ids: str | None) -> list[tuple[int, str, str]]:
    """The replies an account row lists, newest txn first (a txn answered twice: the later)."""
    ids = _loads(reply_ids) if reply_ids else None
    if not ids:
        return []
    rows = conn.execute(f"SELECT txn, line, reply FROM reply_log WHERE id IN "
                        f"({', '.join('?' * len(ids))}) ORDER BY id", ids).fetchall()
    by_txn = {row[0]: row for row in rows}
    return [by_txn[txn] for txn in sorted(by_txn, reverse=True)][:RECENT_REPLIES]


_user_and_txn = operator.itemgetter(0, 1)
#: The document's parts that `Account.to_doc` keeps as the same objects until they change.
_DOC_PARTS = ("holdings", "pending_buys", "pending_sells", "buy_triggers", "sell_triggers")
_Fragment = orjson.Fragment


class _DocumentEncoder:
    """Account documents as JSON text, reusing each part's encoding while the part is unchanged.

    `Account.to_doc` hands out the same object for a part until the part changes (then a new
    one, never changed after), so a part that is the object encoded last time for that user is
    not encoded again: most commits change an account's cash and one part or none, while its
    holdings and trigger tables make up most of the document's bytes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # user -> [part object, its encoding as a Fragment] * len(_DOC_PARTS)
        self._parts: dict[str, list[Any]] = {}

    def rows(self, docs: Iterable[dict[str, Any]]) -> list[tuple[str, int, str, int]]:
        """(user, version, document JSON, active) for each document."""
        dumps = orjson.dumps
        with self._lock:
            known = self._parts
            rows = []
            for doc in docs:
                user = doc["user"]
                cached = known.get(user)
                if cached is None:
                    cached = known[user] = [None] * (2 * len(_DOC_PARTS))
                out = dict(doc)  # same keys in the same order: the text equals dumps(doc)
                slot = 0
                for key in _DOC_PARTS:
                    part = doc[key]
                    if cached[slot] is not part:
                        cached[slot] = part
                        cached[slot + 1] = _Fragment(dumps(part))
                    out[key] = cached[slot + 1]
                    slot += 2
                rows.append((user, doc["version"], dumps(out).decode(), 1 if is_active(doc) else 0))
            return rows


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
        self._documents = _DocumentEncoder()
        # The ids of each user's newest replies, as this instance last committed or read them:
        # a user's replies are written by one store at a time (its shard's), so this copy saves
        # reading them back at each commit.
        self._reply_ids: dict[str, list[int]] = {}
        self._reply_id_next = self._reply_id_end = 0
        self._conn = self._connect()
        with self._lock:
            self._write(_create_schema)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves. The module's implicit BEGIN is
        # DEFERRED, and a deferred transaction that turns into a writer while another process
        # writes fails with SQLITE_BUSY at once instead of waiting for the lock.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000, cached_statements=128)
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
        # Rows, statements and their parameters are all made before the write lock is taken:
        # shards sharing the file queue for it, so it is held for SQLite's own work alone.
        event_rows = _event_rows(batch.events)
        last_event_txn = max((row[0] for row in event_rows), default=0)
        tx_rows = [(user, idx, *rec) for user, idx, rec in batch.transactions]
        # A user's txns grow from batch to batch, so ids given in (user, txn) order keep each
        # user's newest reply by txn last in its list.
        replies = sorted(batch.replies, key=_user_and_txn)
        reply_rows, newest = self._reply_rows(replies) if replies else ([], {})
        statements: list[tuple[str, list[Any] | tuple[Any, ...]]] = []
        # Audit and transactions before the documents, as in the MongoDB adapter (here it only
        # matters for which statement a failure interrupts: none survive).
        if event_rows:
            statements += _multi_row_statements(_INSERT_EVENTS, event_rows)
            statements.append((_RAISE_EVENT_TXN, (last_event_txn,)))
        if tx_rows:
            statements += _multi_row_statements(_INSERT_TXS, tx_rows)
        if reply_rows:
            statements += _multi_row_statements(_INSERT_REPLIES, reply_rows)
        account_rows = self._documents.rows(batch.accounts)
        # A new account's row lists its first replies; a document that is not newer than the
        # stored one leaves its row alone, and its replies are listed apart.
        upserts = _multi_row_statements(_UPSERT_ACCOUNTS, [
            (*row, orjson.dumps(newest[row[0]]).decode() if row[0] in newest else None)
            for row in account_rows], _UPSERT_ACCOUNTS_TAIL) if account_rows else []

        def write(conn: sqlite3.Connection) -> dict[str, list[int]] | None:
            if conn.execute(_RECORD_BATCH, (batch.key,)).rowcount == 0:
                return None  # committed before: a replay
            for statement, params in statements:
                conn.execute(statement, params)
            unlisted = set(newest)
            if upserts and sum(conn.execute(statement, params).rowcount
                               for statement, params in upserts) == len(account_rows):
                unlisted.difference_update(row[0] for row in account_rows)
            if unlisted:
                conn.executemany(_SET_REPLY_IDS, [(orjson.dumps(newest[user]).decode(), user)
                                                  for user in unlisted])
            return newest

        with self._lock:
            listed = self._write(write)
            if listed:  # only once committed: a failed batch leaves the copy as it was
                self._reply_ids.update(listed)

    def _reply_rows(self, replies: list[tuple[str, int, str, str]]
                    ) -> tuple[list[tuple[Any, ...]], dict[str, list[int]]]:
        """Reply-log rows for `replies` under ids of this instance's reserved block, and the ids
        of each of their users' newest replies once the batch is committed.

        Made outside the write transaction: a user's replies are written by one store at a
        time (its shard's), so no other writer changes its listed ids meanwhile.
        """
        with self._lock:
            first = self._take_reply_ids(len(replies))
            known = self._reply_ids
            unknown = [user for user in dict.fromkeys(row[0] for row in replies)
                       if user not in known]
            read: dict[str, list[int]] = {}
            for start in range(0, len(unknown), _USERS_PER_READ):
                chunk = unknown[start:start + _USERS_PER_READ]
                for user, ids in self._conn.execute(
                        f"SELECT user, reply_ids FROM accounts WHERE user IN "
                        f"({', '.join('?' * len(chunk))})", chunk):
                    read[user] = _loads(ids) if ids else []
        rows = [(first + i, *row) for i, row in enumerate(replies)]
        newest: dict[str, list[int]] = {}
        for i, row in enumerate(replies):
            user = row[0]
            ids = newest.get(user)
            if ids is None:
                ids = newest[user] = list(known.get(user) or read.get(user, ()))
            ids.append(first + i)
        for user, ids in newest.items():
            if len(ids) > RECENT_REPLIES:
                newest[user] = ids[-RECENT_REPLIES:]
        return rows, newest

    def _take_reply_ids(self, count: int) -> int:
        """The first of `count` unused reply ids (the caller holds the lock); a new block is
        reserved in the file when this instance's runs out."""
        if self._reply_id_next + count > self._reply_id_end:
            size = max(count, REPLY_IDS_PER_RESERVE)
            last = self._write(lambda conn: _reserve(
                conn, "reply_id", size, conn.execute(_LAST_REPLY_ID).fetchone()[0]))
            self._reply_id_next, self._reply_id_end = last - size + 1, last + 1
        first = self._reply_id_next
        self._reply_id_next += count
        return first

    def reserve_txns(self, count: int, floor: int = 0) -> int:
        """Reserve `count` txns above `floor` and above all reserved before; returns the first."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        with self._lock:
            last = self._write(lambda conn: _reserve(conn, "txn", count, floor))
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
                row = conn.execute("SELECT doc, reply_ids FROM accounts WHERE user = ?",
                                   (user,)).fetchone()
                if row is None:
                    return None
                txs = conn.execute(_SELECT_TXS, (user,)).fetchall()
                replies = _newest_replies(conn, row[1])
                self._reply_ids.setdefault(user, _loads(row[1]) if row[1] else [])
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
                accounts = conn.execute(
                    "SELECT doc, reply_ids FROM accounts WHERE active ORDER BY user")
                for doc_text, reply_ids in _fetch_all(accounts):
                    doc = _loads(doc_text)
                    txs = conn.execute(_SELECT_TXS, (doc["user"],)).fetchall()
                    yield _account(doc, txs, _newest_replies(conn, reply_ids))
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
            yield from _events_of_rows(_fetch_all(rows))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._writer_fd >= 0:
                os.close(self._writer_fd)
                self._writer_fd = -1


def _reserve(conn: sqlite3.Connection, key: str, count: int, floor: int) -> int:
    """Move counter `key` past `floor` and on by `count`; returns its new value (the last)."""
    return conn.execute(_RESERVE, {"key": key, "count": count, "floor": floor}).fetchone()[0]


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
    if "reply_ids" not in {row[1] for row in conn.execute("PRAGMA table_info(accounts)")}:
        conn.execute("ALTER TABLE accounts ADD COLUMN reply_ids TEXT")
    if _has_table(conn, "replies"):
        conn.execute(_MIGRATE_REPLIES)
        conn.execute(_MIGRATE_REPLY_IDS)
        conn.execute("DROP TABLE replies")
    if _has_table(conn, "events"):
        conn.execute(_MIGRATE_EVENTS)
        conn.execute(_RAISE_EVENT_TXN.replace("?", "(SELECT coalesce(max(txn), 0) FROM events)"))
        conn.execute("DROP TABLE events")


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None


def _fetch_all(cursor: sqlite3.Cursor) -> Iterable[tuple[Any, ...]]:
    """The rows of `cursor`, fetched FETCH_SIZE at a time."""
    while rows := cursor.fetchmany(FETCH_SIZE):
        yield from rows
