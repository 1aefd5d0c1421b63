"""The production store on MongoDB (pymongo): batches made idempotent on replay instead of atomic.

Without a replica set there are no multi-document transactions, so a batch is written in four
unordered bulk writes, each safe to repeat: audit events, then transactions, then replies (all
upserted by deterministic ids), then account documents last, each replaced only if the stored
version is lower. A crash between them leaves at most audit, transaction and reply rows ahead of
the document, never a document whose audit is missing. Re-applying the lost commands reuses the
same ids and overwrites those rows, and a load hides transactions the document does not yet count
(`tx_count`) and replies above the document's `last_txn`.

Known limit: a reply row of a lost command that is never retried stays hidden only until the
user's `last_txn` passes its txn; a later retry of exactly that txn and line, after the shard has
reloaded the user, is then answered from the row instead of as a stale txn.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from pymongo import (
    ASCENDING,
    DESCENDING,
    IndexModel,
    MongoClient,
    ReplaceOne,
    ReturnDocument,
    UpdateOne,
)
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError
from pymongo.write_concern import WriteConcern

from server.shards.account import RECENT_REPLIES, Account
from server.shards.audit_events import AuditEvent, TxRecord
from server.store.documents import ReplyRow, is_active, recent_replies
from server.store.port import Batch

DEFAULT_DATABASE = "daytrade"
#: Documents per cursor batch when streaming audit events or accounts.
FETCH_SIZE = 1_000
#: Active accounts whose transactions are fetched with one query.
ACCOUNTS_PER_QUERY = 200
DUPLICATE_KEY = 11000

_EVENT_FIELDS = AuditEvent._fields
#: Fields every event document holds; the others are stored only when not None.
_EVENT_REQUIRED = ("kind", "txn", "seq", "timestamp", "server", "user")
_EVENT_OPTIONAL = _EVENT_FIELDS[len(_EVENT_REQUIRED):]
assert _EVENT_FIELDS[:len(_EVENT_REQUIRED)] == _EVENT_REQUIRED
_EVENT_PROJECTION = {"_id": False}
_EVENT_ORDER = [("txn", ASCENDING), ("user", ASCENDING), ("seq", ASCENDING),
                ("server", ASCENDING)]
_USER_EVENT_ORDER = [("user", ASCENDING), ("txn", ASCENDING), ("seq", ASCENDING),
                     ("server", ASCENDING)]

_TX_FIELDS = TxRecord._fields
_TX_PROJECTION = {"_id": False, "user": True, "idx": True, **dict.fromkeys(_TX_FIELDS, True)}
_TX_ORDER = [("user", ASCENDING), ("idx", ASCENDING)]

_REPLY_PROJECTION = {"_id": False, "txn": True, "line": True, "reply": True}
_REPLY_INDEX = [("user", ASCENDING), ("txn", ASCENDING)]
_NEWEST_FIRST = [("txn", DESCENDING)]

TXN_COUNTER_ID = "txn"


def _event_id(user: str | None, txn: int, seq: int, server: str) -> str:
    # User ids are [A-Za-z0-9_]+, so ':' cannot make two identities collide.
    # User ids are [A-Za-z0-9_]+, so ':' cannot make two identities collide. Events of users
    # without an account number themselves per command (seq < 0): only the txn tells them apart.
    if seq < 0:
        return f"{user or ''}:{seq}:{server}:{txn}"
    return f"{user or ''}:{seq}:{server}"


def _event_doc(event: AuditEvent) -> dict[str, Any]:
    kind, txn, seq, timestamp, server, user = event[:6]
    doc = {"_id": _event_id(user, txn, seq, server), "kind": kind, "txn": txn, "seq": seq,
           "timestamp": timestamp, "server": server, "user": user}
    for name, value in zip(_EVENT_OPTIONAL, event[6:]):
        if value is not None:
            doc[name] = value
    return doc


def _event_from_doc(doc: dict[str, Any]) -> AuditEvent:
    return AuditEvent._make([doc.get(name) for name in _EVENT_FIELDS])


def _tx_doc(user: str, idx: int, record: TxRecord) -> dict[str, Any]:
    return {"_id": f"{user}:{idx}", "user": user, "idx": idx, **record._asdict()}


def _tx_from_doc(doc: dict[str, Any]) -> TxRecord:
    return TxRecord._make([doc[name] for name in _TX_FIELDS])


def _reply_upsert(user: str, txn: int, line: str, reply: str) -> ReplaceOne:
    key = f"{user}:{txn}"
    return ReplaceOne({"_id": key},
                      {"_id": key, "user": user, "txn": txn, "line": line, "reply": reply},
                      upsert=True)


def parse_write_concern(w: str | int) -> str | int:
    """`"majority"`, a tag set name, or a number of nodes given as text ("1")."""
    if isinstance(w, int):
        return w
    return int(w) if w.isdigit() else w


class MongoStore:
    """The `Store` port on a MongoDB database; one instance per process.

    Collections: `accounts` (`_id` = user: `version`, `active`, `tx_count`, `state`),
    `transactions` (`_id` = "user:idx"), `replies` (`_id` = "user:txn": `line`, `reply`),
    `events` (`_id` = "user:seq:server", plus ":txn" when seq < 0), `counters`,
    `credentials` (`_id` = user: `hash`).
    """

    def __init__(self, url: str, *, database: str = DEFAULT_DATABASE,
                 write_concern: str | int = "majority", journal: bool = True,
                 timeout_ms: int = 5000, client: Any = None) -> None:
        self._owns_client = client is None
        if client is None:
            # timeoutMS bounds every operation (server selection, each command, each getMore).
            client = MongoClient(url, timeoutMS=timeout_ms, appname="daytrade")
        self._client = client
        self.write_concern = WriteConcern(parse_write_concern(write_concern), j=journal,
                                          wtimeout=timeout_ms)
        db = client.get_database(database)
        self._db = db

        def collection(name: str) -> Collection:
            return db.get_collection(name, write_concern=self.write_concern)

        self._accounts = collection("accounts")
        self._transactions = collection("transactions")
        self._replies = collection("replies")
        self._events = collection("events")
        self._counters = collection("counters")
        self._credentials = collection("credentials")
        self._create_indexes()

    def _create_indexes(self) -> None:
        self._events.create_indexes([
            IndexModel(_EVENT_ORDER, name="txn_user_seq"),
            IndexModel(_USER_EVENT_ORDER, name="user_txn_seq"),
        ])
        self._transactions.create_indexes([IndexModel(_TX_ORDER, name="user_idx", unique=True)])
        # Rows are not pruned: finding where a user's newest RECENT_REPLIES begin would cost a
        # round trip per user and commit. They are small.
        self._replies.create_indexes([IndexModel(_REPLY_INDEX, name="user_txn", unique=True)])
        self._accounts.create_indexes([IndexModel([("active", ASCENDING)], name="active")])

    # -- writes ------------------------------------------------------------------------------

    def commit_batch(self, batch: Batch) -> None:
        """Write the batch; acknowledged by the configured write concern (majority + journal)."""
        if batch.events:
            _bulk_upsert(self._events, [
                ReplaceOne({"_id": doc["_id"]}, doc, upsert=True)
                for doc in map(_event_doc, batch.events)
            ])
        tx_counts: dict[str, int] = {}
        if batch.transactions:
            ops = []
            for user, idx, record in batch.transactions:
                doc = _tx_doc(user, idx, record)
                ops.append(ReplaceOne({"_id": doc["_id"]}, doc, upsert=True))
                if idx >= tx_counts.get(user, 0):
                    tx_counts[user] = idx + 1
            _bulk_upsert(self._transactions, ops)
        if batch.replies:
            _bulk_upsert(self._replies, [_reply_upsert(*row) for row in batch.replies])
        # Documents last: once one is written, everything it reflects is already durable.
        if batch.accounts:
            _bulk_upsert(self._accounts, [_account_update(doc, tx_counts.get(doc["user"]))
                                          for doc in batch.accounts])

    def reserve_txns(self, count: int, floor: int = 0) -> int:
        """Reserve `count` txns above `floor` and above all reserved before; returns the first.

        Two atomic steps: `$max` lifts the counter to at least `floor`, then `$inc` takes the
        block. A concurrent reservation between them only raises the counter further, so the
        block is still above `floor` and above every earlier block.
        """
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        if floor > 0:
            self._upsert_counter({"$max": {"value": floor}})
        counter = self._upsert_counter({"$inc": {"value": count}})
        return counter["value"] - count + 1

    def max_txn(self) -> int:
        """The highest txn in the audit log or reserved by `reserve_txns`; 0 if none."""
        newest = self._events.find_one({}, {"_id": False, "txn": True}, sort=_NEWEST_FIRST)
        counter = self._counters.find_one({"_id": TXN_COUNTER_ID})
        return max(newest["txn"] if newest else 0, counter["value"] if counter else 0)

    def _upsert_counter(self, update: dict[str, Any]) -> dict[str, Any]:
        def upsert() -> dict[str, Any]:
            return self._counters.find_one_and_update(
                {"_id": TXN_COUNTER_ID}, update, upsert=True, return_document=ReturnDocument.AFTER)

        try:
            return upsert()
        except DuplicateKeyError:
            # Two first-ever upserts raced: the document exists now, so the retry is an update.
            return upsert()

    def set_password_hash(self, user: str, password_hash: str) -> None:
        self._credentials.replace_one({"_id": user}, {"_id": user, "hash": password_hash},
                                      upsert=True)

    # -- reads -------------------------------------------------------------------------------

    def load_account(self, user: str) -> Account | None:
        stored = self._accounts.find_one({"_id": user})
        if stored is None:
            return None
        tx_count = stored.get("tx_count", 0)
        records: list[TxRecord] = []
        if tx_count:
            cursor = self._transactions.find(
                {"user": user, "idx": {"$lt": tx_count}}, _TX_PROJECTION,
                sort=_TX_ORDER, batch_size=FETCH_SIZE)
            records = list(map(_tx_from_doc, cursor))
        state = stored["state"]
        return Account.from_doc(state, records, self._recent_replies(state))

    def account_exists(self, user: str) -> bool:
        return self._accounts.find_one({"_id": user}, {"_id": True}) is not None

    def get_password_hash(self, user: str) -> str | None:
        stored = self._credentials.find_one({"_id": user})
        return None if stored is None else stored["hash"]

    def load_active_accounts(self) -> Iterator[Account]:
        """Accounts with a pending entry or a trigger, each with its transactions, streamed."""
        cursor = self._accounts.find({"active": True}, sort=[("_id", ASCENDING)],
                                     batch_size=FETCH_SIZE)
        try:
            while chunk := list(islice(cursor, ACCOUNTS_PER_QUERY)):
                yield from self._with_transactions(chunk)
        finally:
            cursor.close()

    def _with_transactions(self, stored: list[dict[str, Any]]) -> Iterator[Account]:
        counts = {doc["_id"]: doc.get("tx_count", 0) for doc in stored}
        records: dict[str, list[TxRecord]] = {user: [] for user in counts}
        wanted = [user for user, count in counts.items() if count]
        if wanted:
            for doc in self._transactions.find({"user": {"$in": wanted}}, _TX_PROJECTION,
                                               sort=_TX_ORDER, batch_size=FETCH_SIZE):
                user = doc["user"]
                if doc["idx"] < counts[user]:
                    records[user].append(_tx_from_doc(doc))
        for doc in stored:
            state = doc["state"]
            # One query per account: the newest few of each user cannot be had in one find.
            yield Account.from_doc(state, records[doc["_id"]], self._recent_replies(state))

    def _recent_replies(self, state: dict[str, Any]) -> list[ReplyRow] | None:
        """The user's newest replies the document reflects (a reply row of a batch cut short
        has a txn above its `last_txn`), for `Account.from_doc`."""
        last_txn = state["last_txn"]
        if not last_txn:  # no state-changing command answered yet: no rows to look for
            return None
        cursor = self._replies.find({"user": state["user"], "txn": {"$lte": last_txn}},
                                    _REPLY_PROJECTION, sort=_NEWEST_FIRST, limit=RECENT_REPLIES)
        return recent_replies(state, [(r["txn"], r["line"], r["reply"]) for r in cursor])

    def iter_events(self, user: str | None = None) -> Iterator[AuditEvent]:
        """Audit events ordered by (txn, user, seq), streamed with a server cursor."""
        if user is None:
            cursor = self._events.find({}, _EVENT_PROJECTION, sort=_EVENT_ORDER,
                                       batch_size=FETCH_SIZE)
        else:
            cursor = self._events.find({"user": user}, _EVENT_PROJECTION,
                                       sort=_USER_EVENT_ORDER, batch_size=FETCH_SIZE)
        try:
            yield from map(_event_from_doc, cursor)
        finally:
            cursor.close()

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


def _account_update(doc: dict[str, Any], tx_count: int | None) -> UpdateOne:
    """Replace the user's state only if the stored version is lower (or there is none).

    When the stored version is already as high, the filter matches nothing and the upsert's
    insert collides with the existing `_id`: a duplicate-key error that means "already newer".
    """
    update: dict[str, Any] = {
        "$set": {"version": doc["version"], "active": is_active(doc), "state": doc},
    }
    if tx_count is not None:
        update["$max"] = {"tx_count": tx_count}
    return UpdateOne({"_id": doc["user"], "version": {"$lt": doc["version"]}}, update,
                     upsert=True)


def _bulk_upsert(collection: Collection, operations: Iterable[Any]) -> None:
    """An unordered bulk write in which duplicate-key errors (a newer or racing write) are fine."""
    operations = list(operations)
    if not operations:
        return
    try:
        collection.bulk_write(operations, ordered=False)
    except BulkWriteError as error:
        details = error.details
        if details.get("writeConcernErrors") or any(
                e.get("code") != DUPLICATE_KEY for e in details.get("writeErrors", ())):
            raise
