"""The order ticket's domain, without Textual: the preview of a BUY or SELL by the server's rules
(COMMANDS.md) in integer cents, and the ticket's life from entry to commit, cancel or expiry.

BUY needs `cash >= amount` (the whole amount, not only the cost); `shares = amount // price`;
`cost = shares * price` leaves cash. SELL needs `holdings * price >= amount`; `shares = amount //
price` leave holdings. Zero shares is `amount_too_small`. The server prices the order with its own
quote, so a preview at the last quote seen is an estimate; the cash and free-share checks of a BUY
and of a SELL with nothing to sell do not depend on the price and are certain (for the state last
seen).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from client_tui.model import format as fmt
from client_tui.model.intents import IntentError, parse_amount, parse_symbol
from client_tui.model.quotes import Freshness
from client_tui.model.summary import PendingOrder, ReplyShapeError, Summary, cents
from protocol.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class Preview:
    """What placing `amount` cents of `side` would do at `price` (None: no quote yet).

    `cash` and `free_shares` are the account as last seen.
    """

    side: str
    amount: int
    price: int | None
    cash: int
    free_shares: int

    @classmethod
    def of_account(cls, side: str, symbol: str, amount: int, price: int | None,
                   summary: Summary) -> Preview:
        """The preview for the account as `summary` last showed it."""
        return cls(side, amount, price, summary.cash, summary.holdings.get(symbol, 0))

    @property
    def shares(self) -> int | None:
        return None if self.price is None else self.amount // self.price

    @property
    def value(self) -> int | None:
        """The cost of a BUY or the proceeds of a SELL at `price`."""
        shares = self.shares
        return None if shares is None or self.price is None else shares * self.price

    @property
    def problems(self) -> tuple[ErrorCode, ...]:
        found: list[ErrorCode] = []
        if self.side == "buy" and self.cash < self.amount:
            found.append(ErrorCode.INSUFFICIENT_FUNDS)
        short = self.price is not None and self.free_shares * self.price < self.amount
        if self.side == "sell" and (self.free_shares <= 0 or short):
            found.append(ErrorCode.INSUFFICIENT_SHARES)
        if self.shares == 0:
            found.append(ErrorCode.AMOUNT_TOO_SMALL)
        return tuple(found)

    @property
    def blocked(self) -> bool:
        """Whether the server refuses this whatever its quote: submitting is pointless."""
        if self.side == "buy":
            return self.cash < self.amount
        return self.free_shares <= 0

    @property
    def cash_after(self) -> int | None:
        """Cash once a BUY is placed (None for a SELL, an unknown price or a refused BUY)."""
        if self.side != "buy" or self.value is None or self.blocked:
            return None
        return self.cash - self.value

    def estimate_text(self) -> str:
        """`≈ 8 shares × 12.34 = 98.72 cost` (empty without a quote)."""
        if self.price is None or self.shares is None or self.value is None:
            return ""
        what = "cost" if self.side == "buy" else "proceeds"
        return (f"≈ {shares_text(self.shares)} × {fmt.money(self.price)} = "
                f"{fmt.money(self.value)} {what}")

    def requirement_text(self) -> str:
        """The server's rule with this account's numbers: `needs $100.00, cash $8,292.48`."""
        if self.side == "buy":
            after = self.cash_after
            tail = "" if after is None else f" · cash after {fmt.money(after)}"
            return f"needs ${fmt.money(self.amount)}, cash ${fmt.money(self.cash)}{tail}"
        held = f"you hold {shares_text(self.free_shares)} free"
        if self.price is None:
            return held
        return (f"needs shares worth ${fmt.money(self.amount)}: {held} "
                f"(${fmt.money(self.free_shares * self.price)})")

    def warning(self) -> str:
        """Why the server would refuse it, in words (empty when it would not, as far as known)."""
        problems = self.problems
        if ErrorCode.INSUFFICIENT_FUNDS in problems:
            return (f"insufficient_funds: a BUY holds the whole amount; "
                    f"add ${fmt.money(self.amount - self.cash)} (a) or lower the amount")
        if ErrorCode.INSUFFICIENT_SHARES in problems:
            return "insufficient_shares: not enough free shares for this amount"
        if ErrorCode.AMOUNT_TOO_SMALL in problems:
            return "amount_too_small: less than one share at this price"
        return ""

    def not_placed_text(self) -> str:
        """Why a blocked order was not sent."""
        return f"Not placed — {self.warning() or self.requirement_text()}"


#: What the last quote's freshness means for an order placed now (the server quotes it anew
#: once the quote it has is 60 s old).
QUOTE_NOTE = {Freshness.FRESH: "backs an order", Freshness.AGING: "about to expire",
              Freshness.STALE: "expired: the order will get a new quote"}


def parse_entry(symbol_text: str, amount_text: str) -> tuple[str, int]:
    """The symbol and amount (cents) typed in the ticket's fields; raises IntentError."""
    symbol = parse_symbol(symbol_text)
    if not amount_text.strip():
        raise IntentError("enter an amount in dollars")
    return symbol, parse_amount(amount_text)


def shares_text(n: int) -> str:
    """`1 share`, `2 shares`, `1,000 shares`."""
    return fmt.plural(n, "share")


class TicketState(StrEnum):
    """Where a ticket is: typing, waiting for the BUY/SELL reply, holding a pending order,
    waiting for the COMMIT/CANCEL reply, or finished."""

    ENTRY = "entry"
    PLACING = "placing"
    PENDING = "pending"
    SETTLING = "settling"
    DONE = "done"


class Step(StrEnum):
    """What moves a ticket from one state to the next."""

    PLACE = "place"  # Enter on a complete entry
    PLACED = "placed"  # the server holds the order
    REFUSED = "refused"  # the server said no: the entry can be fixed
    BROKEN = "broken"  # the reply did not say what the protocol promises
    SETTLE = "settle"  # COMMIT or CANCEL sent
    SETTLED = "settled"  # this ticket's order committed or cancelled
    KEPT = "kept"  # the COMMIT/CANCEL failed, or settled another order: ours is still pending
    GONE = "gone"  # the server has no pending order of this side any more
    EXPIRED = "expired"  # the server let the order expire
    CLOSE = "close"  # Esc with nothing pending


class KeyAction(StrEnum):
    """What Enter or Esc asks for in the ticket's state (COMMIT and CANCEL as the wire spells
    them, in lower case)."""

    PLACE = "place"
    COMMIT = "commit"
    CANCEL = "cancel"
    CLOSE = "close"


class TransitionError(RuntimeError):
    """A ticket asked to do something its state does not allow."""


#: state -> step -> next state
TRANSITIONS: dict[TicketState, dict[Step, TicketState]] = {
    TicketState.ENTRY: {Step.PLACE: TicketState.PLACING, Step.CLOSE: TicketState.DONE},
    TicketState.PLACING: {Step.PLACED: TicketState.PENDING, Step.REFUSED: TicketState.ENTRY,
                          Step.BROKEN: TicketState.DONE},
    TicketState.PENDING: {Step.SETTLE: TicketState.SETTLING, Step.EXPIRED: TicketState.DONE},
    TicketState.SETTLING: {Step.SETTLED: TicketState.DONE, Step.KEPT: TicketState.PENDING,
                           Step.GONE: TicketState.DONE, Step.EXPIRED: TicketState.DONE},
    TicketState.DONE: {Step.CLOSE: TicketState.DONE},
}

#: After the countdown ends, wait this long for `pending_expired` before asking the server:
#: the push is the normal way to learn of an expiry, and the clocks differ by a little.
EXPIRY_GRACE_MS = 3_000

#: Textual's toast severities.
Severity = Literal["information", "warning", "error"]

_SETTLED_VERB = {"buy": ("Bought", "cost"), "sell": ("Sold", "proceeds")}


@dataclass(frozen=True, slots=True)
class Toast:
    """A message that outlives the ticket, and how loud it is."""

    message: str
    severity: Severity


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """The pending order the server holds for a ticket, as its BUY or SELL reply described it."""

    side: str
    txn: int | None
    symbol: str
    shares: int
    price: int  # cents
    value: int  # cents: the cost of a BUY, the proceeds of a SELL
    expires_at: int  # the server's Unix ms

    @classmethod
    def from_reply(cls, side: str, txn: int | None, result: Mapping[str, Any]) -> PlacedOrder:
        """Read a BUY or SELL reply's result; raises ReplyShapeError when a field is missing or
        of the wrong shape."""
        try:
            return cls(side, txn, str(result["symbol"]), _count(result["shares"]),
                       cents(result["price"]), cents(result["cost" if side == "buy" else
                                                         "proceeds"]),
                       _count(result["expires_at"]))
        except KeyError as exc:
            raise ReplyShapeError(f"the {side.upper()} reply has no {exc}") from None

    def describe(self) -> str:
        """`Pending BUY #20: 8 shares of ABC @ 12.34 = 98.72`."""
        return (f"Pending {self.side.upper()} #{self.txn}: {shares_text(self.shares)} of "
                f"{self.symbol} @ {fmt.money(self.price)} = {fmt.money(self.value)}")

    def is_settled_by(self, result: Mapping[str, Any]) -> bool:
        """Whether a COMMIT/CANCEL reply settled this order, not a newer one of its side (the
        server settles the newest: its symbol, shares and price tell them apart)."""
        try:
            return (result.get("symbol") == self.symbol
                    and _count(result.get("shares")) == self.shares
                    and cents(result.get("price")) == self.price)
        except ReplyShapeError:
            return False


@dataclass(frozen=True, slots=True)
class Countdown:
    """A pending order's time left by the server's clock, in words; `check_expiry` is True once,
    when the grace for the `pending_expired` push has passed and the server should be asked."""

    left_ms: int
    hint: str
    check_expiry: bool


class Ticket:
    """One BUY or SELL ticket's life: entry → placing → pending → settling → done, or back a
    step when the server refuses, or keeps the order pending."""

    def __init__(self, side: str) -> None:
        self.side = side
        self.state = TicketState.ENTRY
        self.order: PlacedOrder | None = None
        self._expiry_checked = False

    # --- keys ------------------------------------------------------------------------------

    def on_enter(self) -> KeyAction | None:
        """What Enter does now: place, commit, or nothing (busy or done)."""
        return {TicketState.ENTRY: KeyAction.PLACE,
                TicketState.PENDING: KeyAction.COMMIT}.get(self.state)

    def on_escape(self) -> KeyAction | None:
        """What Esc does now: cancel the pending order, close, or nothing (busy)."""
        if self.state == TicketState.PENDING:
            return KeyAction.CANCEL
        if self.state in (TicketState.ENTRY, TicketState.DONE):
            return KeyAction.CLOSE
        return None

    def can(self, step: Step) -> bool:
        return step in TRANSITIONS[self.state]

    # --- placing ---------------------------------------------------------------------------

    def place(self) -> None:
        """The BUY or SELL is on its way."""
        self._step(Step.PLACE)

    def refused(self) -> None:
        """The server refused the order: back to the entry, to fix it."""
        self._step(Step.REFUSED)

    def placed(self, txn: int | None, result: Mapping[str, Any]) -> PlacedOrder:
        """The server holds the order its reply describes; a reply that does not describe one
        ends the ticket (ReplyShapeError)."""
        try:
            order = PlacedOrder.from_reply(self.side, txn, result)
        except ReplyShapeError:
            self._step(Step.BROKEN)
            raise
        self._step(Step.PLACED)
        self.order = order
        return order

    # --- settling --------------------------------------------------------------------------

    def settle_blocker(self, action: KeyAction, newest: PendingOrder | None) -> str:
        """Why COMMIT/CANCEL must not be sent (empty when it may): the server settles the
        newest pending order of a side, and `newest` (as last seen) is newer than this one."""
        order = self._placed()
        if newest is None or newest.expires_at <= order.expires_at:
            return ""
        return (f"a newer {self.side.upper()} #{newest.txn} is pending: the server would "
                f"{action} that one first; settle it in Orders (3)")

    def settle(self) -> None:
        """The COMMIT or CANCEL is on its way."""
        self._step(Step.SETTLE)

    def settled(self, action: KeyAction, result: Mapping[str, Any]) -> Toast:
        """The COMMIT/CANCEL succeeded: done when it settled this order; still pending (with a
        warning) when the server settled a newer one of this side."""
        order = self._placed()
        what = (f"{result.get('shares')} {result.get('symbol')} @ "
                f"{fmt.money_text(result.get('price'))}")
        if not order.is_settled_by(result):
            self._step(Step.KEPT)
            return Toast(f"{action.upper()}_{self.side.upper()} settled a newer order ({what}); "
                         f"this ticket's #{order.txn} is still pending", "warning")
        self._step(Step.SETTLED)
        if action == KeyAction.COMMIT:
            verb, field = _SETTLED_VERB[self.side]
            return Toast(f"{verb} {what} ({field} {fmt.money_text(result.get(field, ''))})",
                         "information")
        return Toast(f"Cancelled {self.side.upper()} of {what}", "information")

    def settle_failed(self, action: KeyAction, code: str, error: str) -> Toast | None:
        """The COMMIT/CANCEL failed: with no pending order of the side left the ticket is done
        (the toast says so); otherwise the order is still pending and None is returned."""
        if code in (ErrorCode.NO_PENDING_BUY, ErrorCode.NO_PENDING_SELL):
            self._step(Step.GONE)
            return Toast(f"{action.upper()} {self.side.upper()} #{self._placed().txn} failed: "
                         f"{error}", "error")
        self._step(Step.KEPT)
        return None

    # --- expiry ----------------------------------------------------------------------------

    def expired_by_server(self, event: Mapping[str, Any]) -> Toast | None:
        """A `pending_expired` push: the ticket is done when it was this ticket's order (None
        when it was another)."""
        alive = self.state in (TicketState.PENDING, TicketState.SETTLING)
        if not alive or self.order is None or event.get("txn") != self.order.txn:
            return None
        self._step(Step.EXPIRED)
        return Toast(f"{self.side.upper()} #{self.order.txn} expired: {event.get('shares')} "
                     f"{event.get('symbol')} @ {fmt.money_text(event.get('price'))} released "
                     f"(cash {fmt.money_text(event.get('cash'))})", "warning")

    def tick(self, now_ms: int) -> Countdown | None:
        """The countdown at the server's `now_ms` while an order is pending (None otherwise)."""
        if self.state not in (TicketState.PENDING, TicketState.SETTLING) or self.order is None:
            return None
        left = self.order.expires_at - now_ms
        if left > 0:
            return Countdown(left, f"Expires in {fmt.countdown(left)} — Enter commits · "
                                   "Esc cancels", False)
        check = left < -EXPIRY_GRACE_MS and not self._expiry_checked
        self._expiry_checked = self._expiry_checked or check
        return Countdown(left, "Expired by the server's clock; waiting for its confirmation …",
                         check)

    def expired_unannounced(self, pending: Sequence[PendingOrder]) -> Toast | None:
        """After the grace, the account's pending orders of this side: the ticket is done when
        its order is no longer among them (the push was lost)."""
        if self.state != TicketState.PENDING or self.order is None:
            return None
        if any(o.txn == self.order.txn for o in pending):
            return None
        self._step(Step.EXPIRED)
        return Toast(f"{self.side.upper()} #{self.order.txn} expired", "warning")

    # --- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Esc with nothing pending."""
        self._step(Step.CLOSE)

    def _step(self, step: Step) -> None:
        nxt = TRANSITIONS[self.state].get(step)
        if nxt is None:
            raise TransitionError(f"{step!r} is not allowed in state {self.state}")
        self.state = nxt

    def _placed(self) -> PlacedOrder:
        if self.order is None:
            raise TransitionError(f"no order placed (state {self.state})")
        return self.order


def _count(value: object) -> int:
    """A reply's whole number (shares, expires_at); raises ReplyShapeError otherwise."""
    if type(value) is not int:
        raise ReplyShapeError(f"expected a whole number, got {value!r}")
    return value
