"""The one allocator of txns: for lines that came without one, and for the shards' firings."""

from __future__ import annotations


class TxnAllocator:
    """The one allocator of txns in the system: for lines that came without one, and for the
    shards' trigger firings; each is above every txn seen, this run or before it.

    Kept in memory, so assigning one never waits for the store; `start` is the highest txn in
    any shard's journal. A txn given to a shard's firing is above every command the gateway had
    routed before, and the channel to the shard keeps order, so the firing runs after those.
    """

    def __init__(self, start: int = 0) -> None:
        self.max_seen = start

    def seen(self, txn: int) -> None:
        if txn > self.max_seen:
            self.max_seen = txn

    def next(self) -> int:
        self.max_seen += 1
        return self.max_seen

    def reserve(self, count: int) -> int:
        """`count` consecutive fresh txns; returns the first."""
        first = self.max_seen + 1
        self.max_seen += count
        return first
