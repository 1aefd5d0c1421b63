"""Typed commands of the command palette (`buy ABC 100`, `trigger buy ABC 500 @ 12.50`, ...).

`parse(text)` turns what the user typed into an Intent, or raises IntentError saying what a valid
command looks like. Intents carry integer cents; the session (client_tui/session.py) sends them.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.limits import SYMBOL, SYMBOL_MAX_LENGTH
from protocol.money import format_cents, parse_cents

USAGE = (
    "buy SYM AMOUNT",
    "sell SYM AMOUNT",
    "trigger buy SYM AMOUNT @ PRICE",
    "trigger sell SYM AMOUNT @ PRICE",
    "cancel trigger buy|sell SYM",
    "commit buy|sell",
    "cancel buy|sell",
    "add AMOUNT",
    "quote SYM",
    "watch SYM",
    "unwatch SYM",
)


class IntentError(ValueError):
    """Typed text that is not a command; the message says why and what would be."""


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Open the order ticket and place a BUY or SELL of `amount` cents of `symbol`."""

    side: str
    symbol: str
    amount: int

    def describe(self) -> str:
        return f"{self.side.upper()} ${format_cents(self.amount)} of {self.symbol}"


@dataclass(frozen=True, slots=True)
class SetTrigger:
    """Reserve `amount` and arm a buy (or sell) trigger for `symbol` at `price`."""

    side: str
    symbol: str
    amount: int
    price: int

    def describe(self) -> str:
        return (f"{self.side} trigger: ${format_cents(self.amount)} of {self.symbol} "
                f"@ {format_cents(self.price)}")


@dataclass(frozen=True, slots=True)
class CancelTrigger:
    side: str
    symbol: str

    def describe(self) -> str:
        return f"cancel the {self.side} trigger on {self.symbol}"


@dataclass(frozen=True, slots=True)
class SettleOrder:
    """COMMIT or CANCEL the newest pending order of a side (the server's rule)."""

    action: str
    side: str

    def describe(self) -> str:
        return f"{self.action} the newest pending {self.side.upper()}"


@dataclass(frozen=True, slots=True)
class AddFunds:
    amount: int

    def describe(self) -> str:
        return f"add ${format_cents(self.amount)} to your cash"


@dataclass(frozen=True, slots=True)
class SymbolAction:
    """`quote`, `watch` or `unwatch` a symbol."""

    action: str
    symbol: str

    def describe(self) -> str:
        return f"{self.action} {self.symbol}"


Intent = PlaceOrder | SetTrigger | CancelTrigger | SettleOrder | AddFunds | SymbolAction


def parse_amount(text: str) -> int:
    """`100`, `$1,250.5`, `12.50` -> cents (> 0); raises IntentError."""
    cleaned = text.strip().removeprefix("$").replace(",", "")
    value = parse_cents(cleaned)
    if value is None:
        raise IntentError(f"{text!r} is not an amount (dollars, at most two decimals)")
    if value <= 0:
        raise IntentError("the amount must be more than zero")
    return value


def parse_symbol(text: str) -> str:
    symbol = text.strip().upper()
    if not SYMBOL.fullmatch(symbol):
        raise IntentError(f"{text!r} is not a stock symbol (1 to {SYMBOL_MAX_LENGTH} letters)")
    return symbol


def _side(word: str) -> str:
    side = word.lower()
    if side not in ("buy", "sell"):
        raise IntentError(f"expected buy or sell, got {word!r}")
    return side


def parse(text: str) -> Intent:
    """Parse one typed command; raises IntentError with a usage hint."""
    # "@12.50" and "@ 12.50" read the same; "at" is accepted for "@".
    words = text.replace("@", " @ ").split()
    if not words:
        raise IntentError("type a command, e.g. " + USAGE[0])
    verb, rest = words[0].lower(), words[1:]
    if verb in ("buy", "sell"):
        _arity(rest, 2, f"{verb} SYM AMOUNT")
        return PlaceOrder(verb, parse_symbol(rest[0]), parse_amount(rest[1]))
    if verb == "trigger":
        rest = ["@" if w.lower() == "at" else w for w in rest]
        if len(rest) != 5 or rest[3] != "@":
            raise IntentError("usage: trigger buy|sell SYM AMOUNT @ PRICE")
        return SetTrigger(_side(rest[0]), parse_symbol(rest[1]), parse_amount(rest[2]),
                          parse_amount(rest[4]))
    if verb == "cancel" and rest and rest[0].lower() == "trigger":
        _arity(rest, 3, "cancel trigger buy|sell SYM")
        return CancelTrigger(_side(rest[1]), parse_symbol(rest[2]))
    if verb in ("commit", "cancel"):
        _arity(rest, 1, f"{verb} buy|sell")
        return SettleOrder(verb, _side(rest[0]))
    if verb == "add":
        _arity(rest, 1, "add AMOUNT")
        return AddFunds(parse_amount(rest[0]))
    if verb in ("quote", "watch", "unwatch"):
        _arity(rest, 1, f"{verb} SYM")
        return SymbolAction(verb, parse_symbol(rest[0]))
    raise IntentError(f"unknown command {words[0]!r}; try: " + "; ".join(USAGE))


def _arity(rest: list[str], count: int, usage: str) -> None:
    if len(rest) != count:
        raise IntentError("usage: " + usage)
