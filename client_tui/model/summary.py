"""DISPLAY_SUMMARY's result as typed records with money in integer cents."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol.money import parse_signed_cents


class ReplyShapeError(ValueError):
    """A reply that lacks a field the protocol promises, or carries one of the wrong shape."""


def cents(text: Any) -> int:
    """A reply's money string (`"12.34"`, `"-5.00"`) in cents; raises ReplyShapeError otherwise."""
    if not isinstance(text, str):
        raise ReplyShapeError(f"money must be a string, got {text!r}")
    value = parse_signed_cents(text)
    if value is None:
        raise ReplyShapeError(f"not a money amount: {text!r}")
    return value


def optional_cents(text: Any) -> int | None:
    """`cents`, or None for a JSON null (an unarmed trigger's price)."""
    return None if text is None else cents(text)


@dataclass(frozen=True, slots=True)
class PendingOrder:
    """An alive pending BUY or SELL: `side` is `buy` or `sell`."""

    side: str
    txn: int
    symbol: str
    shares: int
    price: int
    expires_at: int

    @property
    def amount(self) -> int:
        """Cents the order holds (a buy) or would pay out (a sell)."""
        return self.shares * self.price


@dataclass(frozen=True, slots=True)
class BuyTrigger:
    """Money reserved to buy `symbol` when its price falls to `trigger_price` (None: not armed)."""

    symbol: str
    reserved: int
    trigger_price: int | None


@dataclass(frozen=True, slots=True)
class SellTrigger:
    """Sell `amount` worth of `symbol` when its price rises to `trigger_price` (None: not armed)."""

    symbol: str
    amount: int
    trigger_price: int | None
    reserved_shares: int


@dataclass(frozen=True, slots=True)
class Transaction:
    """One change of the user's cash or shares (COMMANDS.md `transactions`)."""

    txn: int
    time: int
    kind: str
    symbol: str | None
    shares: int
    price: int | None
    cash_delta: int


@dataclass(frozen=True, slots=True)
class Summary:
    """One user's state as DISPLAY_SUMMARY returned it (`transactions` newest first)."""

    user: str
    cash: int
    holdings: Mapping[str, int]
    pending_buys: tuple[PendingOrder, ...]
    pending_sells: tuple[PendingOrder, ...]
    buy_triggers: tuple[BuyTrigger, ...]
    sell_triggers: tuple[SellTrigger, ...]
    transactions: tuple[Transaction, ...]
    transactions_total: int

    @classmethod
    def empty(cls, user: str) -> Summary:
        return cls(user, 0, {}, (), (), (), (), (), 0)


def parse_transaction(obj: Mapping[str, Any]) -> Transaction:
    """One `transactions` entry."""
    try:
        return Transaction(
            txn=int(obj["txn"]), time=int(obj["time"]), kind=str(obj["kind"]),
            symbol=obj.get("symbol"), shares=int(obj.get("shares") or 0),
            price=optional_cents(obj.get("price")), cash_delta=cents(obj["cash_delta"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ReplyShapeError(f"bad transaction record {dict(obj)!r}: {exc}") from None


def _pending(side: str, obj: Mapping[str, Any]) -> PendingOrder:
    return PendingOrder(side, int(obj["txn"]), str(obj["symbol"]), int(obj["shares"]),
                        cents(obj["price"]), int(obj["expires_at"]))


def parse_summary(result: Mapping[str, Any]) -> Summary:
    """DISPLAY_SUMMARY's `result`; raises ReplyShapeError when it is not the promised shape."""
    try:
        return Summary(
            user=str(result["user"]),
            cash=cents(result["cash"]),
            holdings={str(s): int(n) for s, n in dict(result["holdings"]).items()},
            pending_buys=tuple(_pending("buy", p) for p in result["pending_buys"]),
            pending_sells=tuple(_pending("sell", p) for p in result["pending_sells"]),
            buy_triggers=tuple(
                BuyTrigger(str(t["symbol"]), cents(t["reserved"]),
                           optional_cents(t.get("trigger_price")))
                for t in result["buy_triggers"]),
            sell_triggers=tuple(
                SellTrigger(str(t["symbol"]), cents(t["amount"]),
                            optional_cents(t.get("trigger_price")), int(t["reserved_shares"]))
                for t in result["sell_triggers"]),
            transactions=tuple(parse_transaction(t) for t in result["transactions"]),
            transactions_total=int(result["transactions_total"]),
        )
    except ReplyShapeError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ReplyShapeError(f"DISPLAY_SUMMARY result is missing or mangles {exc}") from None
