"""Trigger rows (both sides in one shape), distance to firing, and the requests setting one.

The server sets a trigger in two steps (an amount, then a price) and checks the state after each
step, so editing an armed trigger must pick the order whose middle state is valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from client_tui.model.format import ratio_bp
from client_tui.model.summary import BuyTrigger, SellTrigger, Summary
from protocol import commands as c


@dataclass(frozen=True, slots=True)
class TriggerRow:
    """One trigger: `amount` is the money reserved (buy) or to sell (sell)."""

    side: str
    symbol: str
    amount: int
    trigger_price: int | None
    reserved_shares: int

    @property
    def armed(self) -> bool:
        return self.trigger_price is not None

    @property
    def key(self) -> str:
        return f"{self.side}:{self.symbol}"


def trigger_rows(summary: Summary) -> list[TriggerRow]:
    rows = [TriggerRow("buy", t.symbol, t.reserved, t.trigger_price, 0)
            for t in summary.buy_triggers]
    rows += [TriggerRow("sell", t.symbol, t.amount, t.trigger_price, t.reserved_shares)
             for t in summary.sell_triggers]
    return rows


def distance_bp(trigger_price: int, last_price: int) -> int:
    """How far the price must move to fire, in basis points of the last price (signed).

    A buy fires at or below its price, so its distance is negative while the price is above it; a
    sell fires at or above. Zero or a sign past that means the trigger is crossed (fires at the
    next sweep).
    """
    return ratio_bp(trigger_price - last_price, last_price)


def crossed(side: str, trigger_price: int, last_price: int) -> bool:
    if side == "buy":
        return last_price <= trigger_price
    return last_price >= trigger_price


def plan_buy(user: str, symbol: str, amount: int, price: int,
             existing: BuyTrigger | None) -> list[str]:
    """SET_BUY_AMOUNT and SET_BUY_TRIGGER in an order whose middle state the server accepts."""
    set_amount = c.SetBuyAmount(user, symbol, amount).line()
    set_price = c.SetBuyTrigger(user, symbol, price).line()
    if existing is None or existing.trigger_price is None:
        return [set_amount, set_price]
    if existing.reserved == amount:
        return [set_price]
    # Amount first keeps the old price, which the new amount must cover.
    if amount >= existing.trigger_price:
        return [set_amount, set_price]
    return [set_price, set_amount]


def plan_sell(user: str, symbol: str, amount: int, price: int, existing: SellTrigger | None,
              free_shares: int) -> list[str]:
    """SET_SELL_AMOUNT and SET_SELL_TRIGGER in an order whose middle state the server accepts."""
    set_amount = c.SetSellAmount(user, symbol, amount).line()
    set_price = c.SetSellTrigger(user, symbol, price).line()
    if existing is None or existing.trigger_price is None:
        return [set_amount, set_price]
    if existing.amount == amount:
        return [set_price]
    available = free_shares + existing.reserved_shares
    # Amount first re-arms at the old price: it must sell between 1 share and all of them.
    if 1 <= amount // existing.trigger_price <= available:
        return [set_amount, set_price]
    return [set_price, set_amount]


def find_buy(summary: Summary, symbol: str) -> BuyTrigger | None:
    return next((t for t in summary.buy_triggers if t.symbol == symbol), None)


def find_sell(summary: Summary, symbol: str) -> SellTrigger | None:
    return next((t for t in summary.sell_triggers if t.symbol == symbol), None)


def plan(side: str, user: str, symbol: str, amount: int, price: int, summary: Summary,
         holdings: Mapping[str, int] | None = None) -> list[str]:
    """The request lines that leave `side`'s trigger on `symbol` at `amount` and `price`."""
    if side == "buy":
        return plan_buy(user, symbol, amount, price, find_buy(summary, symbol))
    free = (holdings if holdings is not None else summary.holdings).get(symbol, 0)
    return plan_sell(user, symbol, amount, price, find_sell(summary, symbol), free)
