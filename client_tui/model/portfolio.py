"""Positions, average cost, unrealised P&L, reserved money and total value, in integer cents.

Average cost is the weighted average of what the user paid, from their own transactions: a
committed buy or a buy trigger's fill adds its shares at its price; a committed sell or a sell
trigger's fill takes shares out at the average, leaving the average unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from client_tui.model.summary import Summary, Transaction


def div_round(numerator: int, denominator: int) -> int:
    """Integer division rounded half away from zero."""
    q, r = divmod(abs(numerator), abs(denominator))
    if 2 * r >= abs(denominator):
        q += 1
    return q if (numerator < 0) == (denominator < 0) else -q


@dataclass(frozen=True, slots=True)
class CostBasis:
    """Shares bought and not yet sold, and what they cost in total (cents)."""

    shares: int = 0
    cost: int = 0

    @property
    def average(self) -> int | None:
        """Average cost per share in cents (rounded), None with no shares."""
        return div_round(self.cost, self.shares) if self.shares else None

    def bought(self, shares: int, price: int) -> CostBasis:
        return CostBasis(self.shares + shares, self.cost + shares * price)

    def sold(self, shares: int) -> CostBasis:
        left = max(0, self.shares - shares)
        if not left:
            return CostBasis()
        return CostBasis(left, div_round(self.cost * left, self.shares))

    def cost_of(self, shares: int) -> int | None:
        """What `shares` of this position cost at the average (None without a basis)."""
        return div_round(self.cost * shares, self.shares) if self.shares else None


def is_sell_fill(t: Transaction) -> bool:
    """Whether a `trigger_fill` record is a sell trigger's (else a buy trigger's).

    A sell fill credits exactly `shares * price`; a buy fill credits only the unspent refund,
    which is always less than one share's price, so less than `shares * price`.
    """
    return t.price is not None and t.cash_delta == t.shares * t.price


def cost_basis(transactions: Iterable[Transaction]) -> dict[str, CostBasis]:
    """Per-symbol cost basis from transactions given oldest first."""
    basis: dict[str, CostBasis] = {}
    for t in transactions:
        if t.symbol is None or t.price is None or t.shares <= 0:
            continue
        current = basis.get(t.symbol, CostBasis())
        if t.kind == "buy_commit" or (t.kind == "trigger_fill" and not is_sell_fill(t)):
            basis[t.symbol] = current.bought(t.shares, t.price)
        elif t.kind == "sell_commit" or (t.kind == "trigger_fill" and is_sell_fill(t)):
            basis[t.symbol] = current.sold(t.shares)
    return basis


@dataclass(frozen=True, slots=True)
class Position:
    """One symbol the user owns: free shares, and shares held by pending sells or sell triggers."""

    symbol: str
    free_shares: int
    held_shares: int
    last_price: int | None
    average_cost: int | None
    cost: int | None

    @property
    def shares(self) -> int:
        return self.free_shares + self.held_shares

    @property
    def value(self) -> int | None:
        return None if self.last_price is None else self.shares * self.last_price

    @property
    def unrealised(self) -> int | None:
        """Value at the last price minus what the shares cost (None when either is unknown)."""
        if self.value is None or self.cost is None:
            return None
        return self.value - self.cost


def held_shares(summary: Summary) -> dict[str, int]:
    """Shares out of holdings but still owned: in pending sells and sell-trigger reservations."""
    held: dict[str, int] = {}
    for order in summary.pending_sells:
        held[order.symbol] = held.get(order.symbol, 0) + order.shares
    for trig in summary.sell_triggers:
        if trig.reserved_shares:
            held[trig.symbol] = held.get(trig.symbol, 0) + trig.reserved_shares
    return held


def positions(summary: Summary, last_prices: Mapping[str, int],
              basis: Mapping[str, CostBasis]) -> list[Position]:
    """Every symbol with shares owned, sorted by symbol."""
    held = held_shares(summary)
    rows = []
    for symbol in sorted(set(summary.holdings) | set(held)):
        free, locked = summary.holdings.get(symbol, 0), held.get(symbol, 0)
        if free + locked <= 0:
            continue
        b = basis.get(symbol)
        rows.append(Position(symbol, free, locked, last_prices.get(symbol),
                             b.average if b else None,
                             b.cost_of(free + locked) if b else None))
    return rows


def reserved_total(summary: Summary) -> int:
    """Cash the user cannot spend now: pending buys' cost plus buy-trigger reservations."""
    return (sum(o.amount for o in summary.pending_buys)
            + sum(t.reserved for t in summary.buy_triggers))


@dataclass(frozen=True, slots=True)
class Totals:
    """The account at last quotes. `unpriced` lists owned symbols with no quote yet."""

    cash: int
    reserved: int
    holdings_value: int
    unrealised: int
    unpriced: tuple[str, ...]

    @property
    def total_value(self) -> int:
        """Cash + holdings at last quotes + reserved (unpriced holdings count as nothing)."""
        return self.cash + self.holdings_value + self.reserved


def totals(summary: Summary, rows: Iterable[Position]) -> Totals:
    value = unrealised = 0
    unpriced = []
    for p in rows:
        if p.value is None:
            unpriced.append(p.symbol)
            continue
        value += p.value
        unrealised += p.unrealised or 0
    return Totals(summary.cash, reserved_total(summary), value, unrealised, tuple(unpriced))
