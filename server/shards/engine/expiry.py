"""When each user's pending BUYs and SELLs fall due: a heap for the shard's timer, and the oldest
entry per user, so a command looks for expired entries of its user only when there may be some."""

from __future__ import annotations

import heapq

from protocol.limits import PENDING_LIFETIME_MS
from server.shards.account import Account, Pending


class ExpiryQueue:
    """The due times of pending entries. It may hold entries already settled (committed,
    cancelled or expired by a command): those come out of `pop_due` like the others, and
    releasing them finds nothing to do."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, str, int]] = []  # (expires_at, user, txn)
        # user -> a creation time no later than any of its pending entries' (settled entries
        # may leave it early; `settled` puts it right)
        self._oldest: dict[str, int] = {}

    def add(self, user: str, entry: Pending) -> None:
        """A new pending entry of `user`, due in 60 s."""
        oldest = self._oldest.get(user)
        if oldest is None or entry.created_at < oldest:
            self._oldest[user] = entry.created_at
        heapq.heappush(self._heap, (entry.expires_at, user, entry.txn))

    def load(self, acct: Account) -> None:
        """Every pending entry of an account adopted from a snapshot."""
        for entry in (*acct.pending_buys, *acct.pending_sells):
            heapq.heappush(self._heap, (entry.expires_at, acct.user, entry.txn))
        self.settled(acct)

    def settled(self, acct: Account) -> None:
        """The account's pending entries changed other than by `add` (some expired)."""
        created = [e.created_at for e in (*acct.pending_buys, *acct.pending_sells)]
        if created:
            self._oldest[acct.user] = min(created)
        else:
            self._oldest.pop(acct.user, None)

    def may_have_expired(self, user: str, now: int) -> bool:
        """False when none of the user's pending entries can be due at `now`."""
        oldest = self._oldest.get(user)
        return oldest is not None and oldest <= now - PENDING_LIFETIME_MS

    def next_due(self) -> int | None:
        """When the earliest entry may fall due (Unix ms)."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: int) -> list[str]:
        """Take out every entry due by `now`; returns their users, in due order (a user once per
        entry)."""
        due = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap)[1])
        return due
