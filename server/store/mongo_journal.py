"""The journal port on MongoDB (pymongo): one insert per group commit; snapshots by versions.

The journal is one collection for all shards. A batch record is ONE document, `{_id, shard, seq,
max_txn, data}`, written by one `insert_one` with write concern majority + journal: a
single-document insert is atomic on a standalone server as on a replica set, so a record is
either wholly there or not at all (no torn record to skip), and the insert returns only once the
write is journaled on a majority. `_id` packs the pair (shard, seq) into one int64 (see `_packed`):
the unique `_id` index every collection has is then the fence (a second writer of a shard that
appends a seq already written gets a duplicate-key error, `JournalFenced`), and a shard's records
are one contiguous `_id` range, so the tail, the last seq and the ordered replay are range scans of
that index and need no index of their own. `max_txn` has one: (shard, max_txn).

Snapshots are written without multi-document transactions (no replica set is assumed), by
versioning instead of overwriting:

- `snapshot_accounts`: one document per (shard, user, snapshot seq), `_id` = `{shard, user, seq}`
  (fields in that order), each holding the account as of journal record `seq`. A snapshot adds
  new versions and never changes the ones an earlier snapshot stored.
- `snapshot_chunks`: one document per (shard, user, start). Transaction records never change once
  made, so writing a chunk again under the same key (a retry after a crash) is harmless. Each also
  records `end` (one past its last record) when the call tells it: the start of the user's next
  chunk in the same call, or the listed account's `tx_count` for the user's last one.
- `snapshot_meta`: `{_id: shard, seq: S}`, the seq of the newest complete snapshot. It is written
  LAST, with `$max`, so it never moves back.

A load reads S, then for each user the newest account version whose seq is <= S, then the chunks
that cover records 0 .. tx_count - 1. A crash part way through a write leaves S, and so what a
load returns, as it was: versions above S are ignored. Such leftovers are also harmless later: a
version tagged X always holds the account's state at journal record X (the journal is append-only
and fenced, so that state is the same whichever attempt or writer wrote it), and a later snapshot
at S' >= X leaves an account unlisted only when it did not change since its previous snapshot. A
crashed attempt can also leave chunks at starts a later snapshot does not reuse; the load follows
the chain of `end`s from record 0 and so skips them (falling back to every chunk that starts below
tx_count when a chain link is unknown). After the meta flip, the versions of the listed users
below S are deleted (the newest at or below S supersedes them), a bounded number of users per
delete; a load re-reads S after reading and starts again if it moved, so it never returns
versions a concurrent writer was pruning.

Reads use the default read concern ("local"). On a replica set a load may then see a record that
is not yet majority-committed; the writer's next append (w: majority) cannot be acknowledged
unless that record is committed too, since it follows it in the oplog, so no reply is released on
state that a rollback would undo.

Adapters store bytes only: this module imports nothing of the engine or of accounts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import groupby
from operator import itemgetter
from typing import Any

from bson.binary import Binary
from bson.int64 import Int64
from pymongo import ASCENDING, DESCENDING, IndexModel, MongoClient, ReplaceOne
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError
from pymongo.write_concern import WriteConcern

from server.store.journal_port import (
    JournalFenced,
    LoadedAccount,
    PartitionMismatch,
    Snapshot,
    SnapshotAccount,
    TxChunk,
)

DEFAULT_DATABASE = "daytrade"
#: Documents per cursor batch when streaming records, account versions or chunks.
FETCH_SIZE = 1_000
#: Users whose superseded account versions one delete command removes.
PRUNE_USERS_PER_DELETE = 500
#: Loads started again when the snapshot seq moves while a load reads (another writer).
LOAD_ATTEMPTS = 5

#: Low bits of a record's `_id` that hold its seq; the bits above hold the shard.
SEQ_BITS = 40
#: The highest seq a record can have (about 35 years of 1,000 group commits a second).
MAX_SEQ = (1 << SEQ_BITS) - 1
#: The highest shard whose records' `_id`s fit a signed int64 (63 bits).
MAX_SHARD = (1 << (63 - SEQ_BITS)) - 1

PARTITIONS_ID = "partitions"

_RECORD_ORDER = [("_id", ASCENDING)]
_NEWEST_RECORD = [("_id", DESCENDING)]
_MAX_TXN_INDEX = [("shard", ASCENDING), ("max_txn", DESCENDING)]
_NEWEST_MAX_TXN = [("max_txn", DESCENDING)]
_VERSION_INDEX = [("shard", ASCENDING), ("user", ASCENDING), ("seq", DESCENDING)]
_VERSION_ORDER = [("user", ASCENDING), ("seq", DESCENDING)]
_CHUNK_INDEX = [("shard", ASCENDING), ("user", ASCENDING), ("start", ASCENDING)]
_CHUNK_ORDER = [("user", ASCENDING), ("start", ASCENDING)]


def parse_write_concern(w: str | int) -> str | int:
    """`"majority"`, a tag set name, or a number of nodes given as text ("1")."""
    if isinstance(w, int):
        return w
    return int(w) if w.isdigit() else w


def _packed(shard: int, seq: int) -> Int64:
    """The `_id` of record `seq` of `shard`: `shard << 40 | seq`, one int64.

    The pair (shard, seq) as one number: the unique `_id` index refuses a second record of the
    same pair (the fence), and a shard's records are the range `shard << 40` + 1 .. + MAX_SEQ,
    ordered by seq, so no other shard's record can fall inside it. Always sent as an int64, so
    every `_id` of the collection has one BSON type.
    """
    return Int64(shard << SEQ_BITS | seq)


class _Mongo:
    """A database handle with the configured write concern, and the client it may own."""

    def __init__(self, url: str, *, client: Any, database: str, write_concern: str | int,
                 journal: bool, timeout_ms: int) -> None:
        self._owns_client = client is None
        if client is None:
            # timeoutMS bounds every operation (server selection, each command, each getMore).
            client = MongoClient(url, timeoutMS=timeout_ms, appname="daytrade")
        self._client = client
        self.write_concern = WriteConcern(parse_write_concern(write_concern), j=journal,
                                          wtimeout=timeout_ms)
        self._db = client.get_database(database)

    def _collection(self, name: str) -> Collection:
        return self._db.get_collection(name, write_concern=self.write_concern)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


class MongoJournal(_Mongo):
    """The `ShardJournal` of one shard on a MongoDB database.

    Collections (shared by all shards): `journal` (`_id` = shard << 40 | seq: `shard`, `seq`,
    `max_txn`, `data`), `snapshot_accounts` (`_id` = {shard, user, seq}: `doc`, `tx_count`),
    `snapshot_chunks` (`_id` = {shard, user, start}: `end`, `data`) and `snapshot_meta`
    (`_id` = shard: `seq`).
    """

    def __init__(self, url: str, shard: int, *, client: Any = None,
                 database: str = DEFAULT_DATABASE, write_concern: str | int = "majority",
                 journal: bool = True, timeout_ms: int = 5000) -> None:
        if not 0 <= shard <= MAX_SHARD:
            raise ValueError(f"shard must be 0 .. {MAX_SHARD}, got {shard}")
        super().__init__(url, client=client, database=database, write_concern=write_concern,
                         journal=journal, timeout_ms=timeout_ms)
        self.shard = shard
        self._first_id = _packed(shard, 0)  # below the shard's first record
        self._end_id = _packed(shard + 1, 0)  # above its last possible record
        self._journal = self._collection("journal")
        self._versions = self._collection("snapshot_accounts")
        self._chunks = self._collection("snapshot_chunks")
        self._meta = self._collection("snapshot_meta")
        self._create_indexes()

    def _create_indexes(self) -> None:
        # Idempotent: creating an index that exists with the same keys and name is a no-op.
        self._journal.create_indexes([IndexModel(_MAX_TXN_INDEX, name="shard_max_txn")])
        self._versions.create_indexes([IndexModel(_VERSION_INDEX, name="shard_user_seq")])
        self._chunks.create_indexes([IndexModel(_CHUNK_INDEX, name="shard_user_start")])

    # -- the journal -------------------------------------------------------------------------

    def _range(self, after_seq: int = 0) -> dict[str, Any]:
        low = _packed(self.shard, after_seq) if after_seq > 0 else self._first_id
        return {"_id": {"$gt": low, "$lt": self._end_id}}

    def last_seq(self) -> int:
        newest = self._journal.find_one(self._range(), {"_id": True}, sort=_NEWEST_RECORD)
        return 0 if newest is None else newest["_id"] - self._first_id

    def append(self, seq: int, max_txn: int, data: bytes) -> None:
        """Insert record `seq`; acknowledged by the configured write concern (majority + journal).

        A write concern error or a timeout raises as it is (the record may or may not be stored:
        the writer must stop and reload); only a duplicate key means another writer. On a
        standalone server pymongo does not retry a write, so appending a seq again after such an
        error also reports a fence: stopping and replaying is right in both cases.
        """
        if not 1 <= seq <= MAX_SEQ:
            raise ValueError(f"a journal seq is 1 .. {MAX_SEQ}, got {seq}")
        record = {"_id": _packed(self.shard, seq), "shard": self.shard, "seq": seq,
                  "max_txn": max_txn, "data": Binary(data)}
        try:
            self._journal.insert_one(record)
        except DuplicateKeyError as error:
            raise JournalFenced(
                f"record {seq} of shard {self.shard} is already in the journal: another writer "
                f"of this shard wrote it, so this one must stop (a restart replays the journal)"
            ) from error

    def records(self, after_seq: int = 0) -> Iterator[tuple[int, bytes]]:
        if after_seq >= MAX_SEQ:
            return
        cursor = self._journal.find(self._range(after_seq), {"data": True}, sort=_RECORD_ORDER,
                                    batch_size=FETCH_SIZE)
        try:
            for record in cursor:
                yield record["_id"] - self._first_id, bytes(record["data"])
        finally:
            cursor.close()

    def max_txn(self) -> int:
        newest = self._journal.find_one({"shard": self.shard}, {"_id": False, "max_txn": True},
                                        sort=_NEWEST_MAX_TXN)
        return 0 if newest is None else newest["max_txn"]

    # -- snapshots ---------------------------------------------------------------------------

    def _snapshot_seq(self) -> int | None:
        meta = self._meta.find_one({"_id": self.shard})
        return None if meta is None else meta["seq"]

    def write_snapshot(self, seq: int, accounts: list[SnapshotAccount],
                       chunks: list[TxChunk]) -> None:
        """Chunks, then account versions (unordered bulk writes), then the snapshot seq, then the
        pruning of the listed users' superseded versions."""
        if not 0 <= seq <= MAX_SEQ:
            raise ValueError(f"a snapshot seq is 0 .. {MAX_SEQ}, got {seq}")
        stored = self._snapshot_seq()
        if stored is not None and seq <= stored:
            return
        # One document per key: of two entries for the same key the last one listed wins.
        by_user = {account.user: account for account in accounts}
        by_key = {(chunk.user, chunk.start): chunk for chunk in chunks}
        _bulk_replace(self._chunks, self._chunk_docs(by_key, by_user))
        _bulk_replace(self._versions, (self._version_doc(seq, a) for a in by_user.values()))
        self._flip_meta(seq)
        self._prune(seq, list(by_user))

    def _chunk_docs(self, by_key: dict[tuple[str, int], TxChunk],
                    by_user: dict[str, SnapshotAccount]) -> Iterator[dict[str, Any]]:
        for user, keyed in groupby(sorted(by_key), key=itemgetter(0)):
            starts = [start for _, start in keyed]
            account = by_user.get(user)
            ends: list[int | None] = [*starts[1:], account.tx_count if account else None]
            for start, end in zip(starts, ends):
                key = {"shard": self.shard, "user": user, "start": start}
                yield {"_id": key, **key,
                       "end": end if end is not None and end > start else None,
                       "data": Binary(by_key[user, start].data)}

    def _version_doc(self, seq: int, account: SnapshotAccount) -> dict[str, Any]:
        key = {"shard": self.shard, "user": account.user, "seq": seq}
        return {"_id": key, **key, "tx_count": account.tx_count, "doc": Binary(account.doc)}

    def _flip_meta(self, seq: int) -> None:
        def flip() -> None:
            self._meta.update_one({"_id": self.shard}, {"$max": {"seq": seq}}, upsert=True)

        try:
            flip()
        except DuplicateKeyError:
            # Two first-ever upserts raced: the document exists now, so the retry is an update.
            flip()

    def _prune(self, seq: int, users: list[str]) -> None:
        """Delete the listed users' versions below `seq`: the one at `seq` supersedes them for
        this snapshot and every later one."""
        for first in range(0, len(users), PRUNE_USERS_PER_DELETE):
            batch = users[first:first + PRUNE_USERS_PER_DELETE]
            self._versions.delete_many(
                {"shard": self.shard, "user": {"$in": batch}, "seq": {"$lt": seq}})

    def load_snapshot(self) -> Snapshot | None:
        seq = self._snapshot_seq()
        for _ in range(LOAD_ATTEMPTS):
            if seq is None:
                return None
            accounts = self._load_accounts(seq)
            # Pruning follows a meta flip, so versions read while one pruned show as a new seq.
            read_again = self._snapshot_seq()
            if read_again == seq:
                return Snapshot(seq, accounts)
            seq = read_again
        raise RuntimeError(
            f"the snapshot of shard {self.shard} moved during {LOAD_ATTEMPTS} loads in a row: "
            f"another writer of this shard is writing snapshots")

    def _load_accounts(self, seq: int) -> list[LoadedAccount]:
        newest: dict[str, tuple[bytes, int]] = {}
        cursor = self._versions.find(
            {"shard": self.shard, "seq": {"$lte": seq}},
            {"_id": False, "user": True, "tx_count": True, "doc": True},
            sort=_VERSION_ORDER, batch_size=FETCH_SIZE)
        try:
            for version in cursor:  # newest first within each user: keep the first seen
                newest.setdefault(version["user"], (bytes(version["doc"]), version["tx_count"]))
        finally:
            cursor.close()
        chunks: dict[str, list[dict[str, Any]]] = {}
        cursor = self._chunks.find(
            {"shard": self.shard}, {"_id": False, "user": True, "start": True, "end": True,
                                    "data": True},
            sort=_CHUNK_ORDER, batch_size=FETCH_SIZE)
        try:
            for chunk in cursor:
                stored = newest.get(chunk["user"])
                if stored is not None and chunk["start"] < stored[1]:
                    chunks.setdefault(chunk["user"], []).append(chunk)
        finally:
            cursor.close()
        return [LoadedAccount(user, doc, tx_count, _covering(chunks.get(user, []), tx_count))
                for user, (doc, tx_count) in sorted(newest.items())]


def _covering(chunks: list[dict[str, Any]], tx_count: int) -> list[bytes]:
    """The data of the chunks that cover records 0 .. tx_count - 1, from `chunks` (a user's, in
    start order, all starting below tx_count): the chain of `end`s from record 0, which skips
    chunks a crashed snapshot left at starts no later snapshot reused. Where a link is missing
    or has no `end`, every remaining chunk is taken, in start order."""
    by_start = {chunk["start"]: chunk for chunk in chunks}
    chain: list[bytes] = []
    position = 0
    while position < tx_count:  # bounded: each step moves `position` forward to a chunk's end
        chunk = by_start.get(position)
        end = None if chunk is None else chunk.get("end")
        if end is None or end <= position:
            chain.extend(bytes(c["data"]) for c in chunks if c["start"] >= position)
            break
        chain.append(bytes(chunk["data"]))
        position = end
    return chain


def _bulk_replace(collection: Collection, docs: Iterable[dict[str, Any]]) -> None:
    """Upsert every document by its `_id` in one unordered bulk write (pymongo splits it into
    commands of the server's maximum size)."""
    operations = [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in docs]
    if operations:
        collection.bulk_write(operations, ordered=False)


class MongoDirectory(_Mongo):
    """The `Directory` on a MongoDB database: `credentials` (`_id` = user: `hash`) and `meta`
    (`{_id: "partitions", value: N}`)."""

    def __init__(self, url: str, *, client: Any = None, database: str = DEFAULT_DATABASE,
                 write_concern: str | int = "majority", journal: bool = True,
                 timeout_ms: int = 5000) -> None:
        super().__init__(url, client=client, database=database, write_concern=write_concern,
                         journal=journal, timeout_ms=timeout_ms)
        self._credentials = self._collection("credentials")
        self._meta = self._collection("meta")

    def claim_partitions(self, count: int) -> None:
        """Insert the count; if one is there already (a duplicate `_id`), compare with it."""
        if count < 1:
            raise ValueError(f"the partition count must be at least 1, got {count}")
        try:
            self._meta.insert_one({"_id": PARTITIONS_ID, "value": count})
        except DuplicateKeyError:
            made_with = self.partitions()
            if made_with != count:
                raise PartitionMismatch(made_with, count) from None

    def partitions(self) -> int | None:
        stored = self._meta.find_one({"_id": PARTITIONS_ID})
        return None if stored is None else stored["value"]

    def get_password_hash(self, user: str) -> str | None:
        stored = self._credentials.find_one({"_id": user})
        return None if stored is None else stored["hash"]

    def set_password_hash(self, user: str, password_hash: str) -> None:
        self._credentials.replace_one({"_id": user}, {"_id": user, "hash": password_hash},
                                      upsert=True)
