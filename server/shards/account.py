"""One user's trading state: cash, holdings, pending orders, triggers, history and recent replies.

How it is stored is not its business: a shard journals the inputs that change it and snapshots
it (server/store/codec.py).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from protocol.limits import PENDING_LIFETIME_MS, RECENT_REPLIES


@dataclass(slots=True)
class Pending:
    """A BUY or SELL waiting for its COMMIT or CANCEL."""

    txn: int
    symbol: str
    shares: int
    price: int
    created_at: int

    @property
    def expires_at(self) -> int:
        return self.created_at + PENDING_LIFETIME_MS


@dataclass(slots=True)
class BuyTrigger:
    reserved: int  # cents held out of cash
    price: int | None = None  # armed when set


@dataclass(slots=True)
class SellTrigger:
    amount: int  # cents the user wants to sell for
    price: int | None = None
    reserved_shares: int = 0


@dataclass(slots=True)
class Account:
    """The state of one user. Mutated only by the engine of the shard that owns the user."""

    user: str
    cash: int = 0
    holdings: dict[str, int] = field(default_factory=dict)
    pending_buys: list[Pending] = field(default_factory=list)
    pending_sells: list[Pending] = field(default_factory=list)
    buy_triggers: dict[str, BuyTrigger] = field(default_factory=dict)
    sell_triggers: dict[str, SellTrigger] = field(default_factory=dict)
    #: server.shards.audit_events.TxRecord's fields, as plain tuples (see `record`).
    transactions: list[tuple[Any, ...]] = field(default_factory=list)
    #: Highest txn of a state-changing command answered for this user.
    last_txn: int = 0
    #: (txn, canonical line, reply JSON) of the newest state-changing commands, for idempotent
    #: retries: plain strings, like the records, so the collector lets go of them.
    recent: deque[tuple[int, str, str]] = field(
        default_factory=lambda: deque(maxlen=RECENT_REPLIES))
    #: Counter of this user's audit events (AuditEvent.seq).
    event_seq: int = 0

    def answered(self, txn: int, command: Any, reply: Any) -> None:
        """A state-changing command was answered (failures included): its txn is the user's
        last, and its reply is kept for retries (server/shards/engine/idempotency.py)."""
        self.last_txn = txn
        # The reply's JSON is cached on it, so sending it later costs nothing more.
        self.recent.append((txn, command.line(), reply.to_json()))

    def record(self, txn: int, now: int, kind: str, symbol: str | None, shares: int,
               price: int | None, cash_delta: int) -> None:
        """Add a change of cash or shares to the history DISPLAY_SUMMARY shows.

        A plain tuple, not a TxRecord: the collector untracks a tuple of plain values the first
        time it sees it, but never a NamedTuple, and a shard keeps every record of every user.
        Tracked, they made each young collection walk ~50,000 objects (30-90 ms of a shard's
        CPU in final_2019 at half load, and 170-215 ms for the middle generation), one pause
        every few seconds in each shard."""
        self.transactions.append((txn, now, kind, symbol, shares, price, cash_delta))
