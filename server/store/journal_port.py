"""The persistence port: each shard's journal of batches and its snapshots, and the directory.

A shard's durable state is its journal: one record per group commit, appended in `seq` order
(1, 2, 3, ...), each an opaque byte string (`server.store.codec` makes and reads them); state is
derived by replaying records through the engine, starting from the newest snapshot. Adapters
store bytes and keep the ordering, durability and fencing promises below; they know nothing of
accounts or commands. The directory holds what is cluster-wide: credentials and the partition
count fixed when the data was made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


class JournalFenced(RuntimeError):
    """A record of this seq is already in the journal: another writer of the same shard exists,
    and this one must stop at once (at most one live writer per shard)."""


class PartitionMismatch(RuntimeError):
    """The data was made with another partition (shard) count than the one asked for."""

    def __init__(self, made_with: int, asked: int) -> None:
        super().__init__(
            f"this data was made with {made_with} shards, not {asked}: start with "
            f"--shards {made_with} (the partition count is fixed when the data is made)")
        self.made_with = made_with
        self.asked = asked


@dataclass(frozen=True, slots=True)
class SnapshotAccount:
    """One account in a snapshot: its encoded state and how many transaction records it has."""

    user: str
    doc: bytes
    tx_count: int


@dataclass(frozen=True, slots=True)
class TxChunk:
    """Transaction records `start .. start + n - 1` of a user, encoded (records never change once
    made, so a snapshot writes only the records made since the previous one)."""

    user: str
    start: int
    data: bytes


@dataclass(frozen=True, slots=True)
class LoadedAccount:
    """An account as a snapshot load returns it: its doc and the data of the chunks that cover
    records 0 .. tx_count - 1, in `start` order (chunks past tx_count are left out)."""

    user: str
    doc: bytes
    tx_count: int
    chunks: list[bytes]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The newest complete snapshot of a shard: the journal seq it reflects, and its accounts."""

    seq: int
    accounts: list[LoadedAccount]


class ShardJournal(Protocol):
    """One shard's journal and snapshots. Blocking calls; one writer per shard."""

    shard: int

    def last_seq(self) -> int:
        """The highest seq appended (0 for an empty journal)."""

    def append(self, seq: int, max_txn: int, data: bytes) -> None:
        """Durably append record `seq` (`max_txn`: the highest txn in it, 0 if none). Returns only
        once it survives a crash of the process and of the machine. Raises JournalFenced when a
        record with this seq exists (written by another writer)."""

    def records(self, after_seq: int = 0) -> Iterator[tuple[int, bytes]]:
        """(seq, data) of every record above `after_seq`, in seq order, streamed."""

    def max_txn(self) -> int:
        """The highest `max_txn` of any record (0 if none)."""

    def write_snapshot(self, seq: int, accounts: list[SnapshotAccount],
                       chunks: list[TxChunk]) -> None:
        """Record the accounts that changed since the previous snapshot, as of journal `seq`.

        Accounts not listed keep their stored state. A crash part way leaves `load_snapshot`
        returning the previous snapshot whole. A `seq` not above the stored one is ignored.
        """

    def load_snapshot(self) -> Snapshot | None:
        """The newest complete snapshot, or None if none was ever written."""

    def close(self) -> None:
        """Release connections and files."""


class Directory(Protocol):
    """What is shared by all shards: credentials and the partition count."""

    def claim_partitions(self, count: int) -> None:
        """Record `count` as the partition count if none is recorded yet; PartitionMismatch if
        another count is recorded."""

    def partitions(self) -> int | None:
        """The recorded partition count, or None for new data."""

    def get_password_hash(self, user: str) -> str | None:
        """The stored password hash of `user`, or None."""

    def set_password_hash(self, user: str, password_hash: str) -> None:
        """Store (or replace) the password hash of `user`."""

    def close(self) -> None:
        """Release connections and files."""
