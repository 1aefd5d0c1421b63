"""The persistence port every store adapter implements, and the batch a group commit writes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import uuid4

from server.shards.account import Account
from server.shards.audit_events import AuditEvent, TxRecord


@dataclass(slots=True)
class Batch:
    """Everything one group commit writes, all or nothing (SQLite) or idempotently (MongoDB).

    `accounts` are `Account.to_doc()` documents (each with a `version` higher than the stored one);
    `transactions` are `(user, index, record)` with `index` the record's position in that user's
    list (0-based), so a replayed append is recognisable; `events` are the audit events;
    `replies` are `(user, txn, canonical line, reply JSON)` of state-changing commands, kept for
    idempotent retries (a load returns each user's newest RECENT_REPLIES of them). `key` names
    the batch, so that an adapter whose commits are all or nothing can recognise a replay of it
    at once instead of by every row's natural key.
    """

    accounts: list[dict[str, Any]] = field(default_factory=list)
    transactions: list[tuple[str, int, TxRecord]] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)
    replies: list[tuple[str, int, str, str]] = field(default_factory=list)
    key: str = field(default_factory=lambda: uuid4().hex)

    def __bool__(self) -> bool:
        return bool(self.accounts or self.transactions or self.events or self.replies)


class Store(Protocol):
    """What shards and the gateway need from persistence. All methods are blocking."""

    def load_account(self, user: str) -> Account | None:
        """The user's state with all its transactions and its newest RECENT_REPLIES replies
        (oldest first), or None if the user has no account."""

    def account_exists(self, user: str) -> bool:
        """True if the user has an account."""

    def load_active_accounts(self) -> Iterator[Account]:
        """Every account holding a pending entry or a trigger (each shard keeps its own users)."""

    def commit_batch(self, batch: Batch) -> None:
        """Durably write a batch. Returns only once it survives a crash."""

    def iter_events(self, user: str | None = None) -> Iterator[AuditEvent]:
        """Audit events of all users (or one) ordered by (txn, user, seq), streamed."""

    def reserve_txns(self, count: int, floor: int = 0) -> int:
        """Reserve `count` fresh txns above `floor` and above every txn reserved before.

        Returns the first; the caller owns `first .. first + count - 1`.
        """

    def max_txn(self) -> int:
        """The highest txn the store knows of (in its audit log or its txn counter); 0 if none."""

    def get_password_hash(self, user: str) -> str | None:
        """The stored password hash of `user`, or None."""

    def set_password_hash(self, user: str, password_hash: str) -> None:
        """Store (or replace) the password hash of `user`."""

    def close(self) -> None:
        """Release connections and files."""
