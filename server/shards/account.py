"""One user's trading state, and its plain-dict form for the store.

The transactions list is kept in memory for DISPLAY_SUMMARY but persisted apart from the document
(appended rows), so that a commit writes only what changed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from server.shards.audit_events import TxRecord

#: How many state-changing replies are kept per user for idempotent retries (PROTOCOL.md).
RECENT_REPLIES = 16
PENDING_LIFETIME_MS = 60_000
#: The parts of the document an account keeps rendered (`Account.doc_parts`).
PART_HOLDINGS, PART_PENDING_BUYS, PART_PENDING_SELLS = 0, 1, 2
PART_BUY_TRIGGERS, PART_SELL_TRIGGERS = 3, 4


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
    transactions: list[TxRecord] = field(default_factory=list)
    #: Highest txn of a state-changing command answered for this user.
    last_txn: int = 0
    #: (txn, canonical line, Reply or its JSON) of the newest state-changing commands; persisted
    #: as rows of their own (Batch.replies), not in the document, so a commit writes only news.
    recent: deque[tuple[int, str, Any]] = field(
        default_factory=lambda: deque(maxlen=RECENT_REPLIES))
    #: Entries of `recent` the store does not have yet (not persisted: drained by the engine).
    new_replies: list[tuple[int, str, Any]] = field(default_factory=list, compare=False)
    #: Counter of this user's audit events (AuditEvent.seq).
    event_seq: int = 0
    #: Bumped on every persisted change, so a replayed commit can be recognised as stale.
    version: int = 0
    #: The document's holdings, pendings and triggers as last rendered (indexed by the PART_
    #: constants; None: render again), or None for all. The engine drops those a command may
    #: have changed (`parts_changed`), or all of them (an expiry, a trigger firing); failures
    #: and reads, most commands, reuse them all, and most successes change one or two.
    doc_parts: list[Any] | None = field(default=None, compare=False, repr=False)
    #: How many of `transactions` the store already holds (not persisted: derived on load).
    persisted_tx: int = field(default=0, compare=False)

    def remember(self, txn: int, line: str, reply: Any) -> None:
        """Keep a state-changing command's reply for retries (and for the next commit)."""
        entry = (txn, line, reply)
        self.recent.append(entry)
        self.new_replies.append(entry)

    def parts_changed(self, parts: tuple[int, ...]) -> None:
        """Drop the rendered document parts (PART_ constants) that a change made stale."""
        rendered = self.doc_parts
        if rendered is not None:
            for part in parts:
                rendered[part] = None

    def to_doc(self) -> dict[str, Any]:
        """The state without its transactions and replies, as JSON-compatible plain data."""
        parts = self.doc_parts
        if parts is None:
            parts = self.doc_parts = [None, None, None, None, None]
        holdings, pending_buys, pending_sells, buy_triggers, sell_triggers = parts
        # Each part is a new object when rendered again and never changed after: a batch being
        # committed on another thread may still hold the old one.
        if holdings is None:
            holdings = parts[PART_HOLDINGS] = dict(self.holdings)
        if pending_buys is None:
            pending_buys = parts[PART_PENDING_BUYS] = [
                [p.txn, p.symbol, p.shares, p.price, p.created_at] for p in self.pending_buys]
        if pending_sells is None:
            pending_sells = parts[PART_PENDING_SELLS] = [
                [p.txn, p.symbol, p.shares, p.price, p.created_at] for p in self.pending_sells]
        if buy_triggers is None:
            buy_triggers = parts[PART_BUY_TRIGGERS] = {
                s: [t.reserved, t.price] for s, t in self.buy_triggers.items()}
        if sell_triggers is None:
            sell_triggers = parts[PART_SELL_TRIGGERS] = {
                s: [t.amount, t.price, t.reserved_shares] for s, t in self.sell_triggers.items()}
        return {
            "user": self.user,
            "cash": self.cash,
            "holdings": holdings,
            "pending_buys": pending_buys,
            "pending_sells": pending_sells,
            "buy_triggers": buy_triggers,
            "sell_triggers": sell_triggers,
            "last_txn": self.last_txn,
            "event_seq": self.event_seq,
            "version": self.version,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any], transactions: list[TxRecord] | None = None,
                 replies: list[tuple[int, str, str]] | None = None) -> Account:
        """Rebuild an account from its document, its transactions and its newest replies
        (oldest first; documents of older versions carried them as `recent`)."""
        account = cls(
            user=doc["user"],
            cash=doc["cash"],
            holdings={s: n for s, n in doc["holdings"].items()},
            pending_buys=[Pending(*p) for p in doc["pending_buys"]],
            pending_sells=[Pending(*p) for p in doc["pending_sells"]],
            buy_triggers={s: BuyTrigger(*t) for s, t in doc["buy_triggers"].items()},
            sell_triggers={s: SellTrigger(*t) for s, t in doc["sell_triggers"].items()},
            transactions=list(transactions or []),
            last_txn=doc["last_txn"],
            recent=deque((tuple(r) for r in (replies if replies is not None
                                              else doc.get("recent", ()))),
                         maxlen=RECENT_REPLIES),
            event_seq=doc["event_seq"],
            version=doc["version"],
            persisted_tx=len(transactions or ()),
        )
        if replies is None and doc.get("recent"):
            # An older document kept its replies inside: the next commit writes them as rows.
            account.new_replies.extend(account.recent)
        return account
