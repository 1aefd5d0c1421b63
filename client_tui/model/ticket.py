"""The order ticket's domain: its state machine and the preview of a BUY or SELL, by the server's
rules (COMMANDS.md), in integer cents.

BUY needs `cash >= amount` (the whole amount, not only the cost); `shares = amount // price`;
`cost = shares * price` leaves cash. SELL needs `holdings * price >= amount`; `shares = amount //
price` leave holdings. Zero shares is `amount_too_small`. The server prices the order with its own
quote, so a preview at the last quote seen is an estimate; the cash and free-share checks of a BUY
and of a SELL with nothing to sell do not depend on the price and are certain (for the state last
seen).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from client_tui.model import format as fmt


class Problem(StrEnum):
    """Why the server would refuse the order, named by its error code."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    INSUFFICIENT_SHARES = "insufficient_shares"
    AMOUNT_TOO_SMALL = "amount_too_small"


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

    @property
    def shares(self) -> int | None:
        return None if self.price is None else self.amount // self.price

    @property
    def value(self) -> int | None:
        """The cost of a BUY or the proceeds of a SELL at `price`."""
        shares = self.shares
        return None if shares is None or self.price is None else shares * self.price

    @property
    def problems(self) -> tuple[Problem, ...]:
        found: list[Problem] = []
        if self.side == "buy" and self.cash < self.amount:
            found.append(Problem.INSUFFICIENT_FUNDS)
        short = self.price is not None and self.free_shares * self.price < self.amount
        if self.side == "sell" and (self.free_shares <= 0 or short):
            found.append(Problem.INSUFFICIENT_SHARES)
        if self.shares == 0:
            found.append(Problem.AMOUNT_TOO_SMALL)
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
        if Problem.INSUFFICIENT_FUNDS in problems:
            return (f"insufficient_funds: a BUY holds the whole amount; "
                    f"add ${fmt.money(self.amount - self.cash)} (a) or lower the amount")
        if Problem.INSUFFICIENT_SHARES in problems:
            return "insufficient_shares: not enough free shares for this amount"
        if Problem.AMOUNT_TOO_SMALL in problems:
            return "amount_too_small: less than one share at this price"
        return ""


def shares_text(n: int) -> str:
    """`1 share`, `2 shares`, `1,000 shares`."""
    return fmt.plural(n, "share")


class TicketState(StrEnum):
    ENTRY = "entry"
    PLACING = "placing"
    PENDING = "pending"
    SETTLING = "settling"
    DONE = "done"


class TransitionError(RuntimeError):
    """A ticket asked to do something its state does not allow."""


#: state -> event -> next state
TRANSITIONS: dict[TicketState, dict[str, TicketState]] = {
    TicketState.ENTRY: {"place": TicketState.PLACING, "close": TicketState.DONE},
    TicketState.PLACING: {"placed": TicketState.PENDING, "refused": TicketState.ENTRY,
                          "broken": TicketState.DONE},
    TicketState.PENDING: {"settle": TicketState.SETTLING, "expired": TicketState.DONE},
    TicketState.SETTLING: {"settled": TicketState.DONE, "kept": TicketState.PENDING,
                           "gone": TicketState.DONE, "expired": TicketState.DONE},
    TicketState.DONE: {"close": TicketState.DONE},
}


class TicketFlow:
    """One ticket's life: entry → placing → pending → settling → done (or back a step)."""

    def __init__(self) -> None:
        self.state = TicketState.ENTRY

    def can(self, event: str) -> bool:
        return event in TRANSITIONS[self.state]

    def fire(self, event: str) -> TicketState:
        nxt = TRANSITIONS[self.state].get(event)
        if nxt is None:
            raise TransitionError(f"{event!r} is not allowed in state {self.state}")
        self.state = nxt
        return nxt

    def finish(self) -> None:
        """The ticket closes, whatever it was doing (settled, expired, or gone)."""
        self.state = TicketState.DONE

    def on_enter(self) -> str | None:
        """What Enter does now: `place`, `commit` or nothing."""
        return {TicketState.ENTRY: "place", TicketState.PENDING: "commit"}.get(self.state)

    def on_escape(self) -> str | None:
        """What Esc does now: `cancel` (the pending order), `close`, or nothing (busy)."""
        if self.state == TicketState.PENDING:
            return "cancel"
        if self.state in (TicketState.ENTRY, TicketState.DONE):
            return "close"
        return None
