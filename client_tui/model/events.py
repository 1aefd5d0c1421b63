"""Pushed events and request outcomes in words, for toasts, the status line and the Log view."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from client_tui.model.format import money_text
from protocol.replies import PENDING_EXPIRED, TRIGGER_FIRED

#: Characters of a reply's result shown in the Log view.
RESULT_SHOWN = 72


def describe_event(name: str, data: Mapping[str, Any]) -> str:
    """`trigger_fired` and `pending_expired` as a sentence; other events as their fields."""
    symbol, shares = data.get("symbol"), data.get("shares")
    price, cash = money_text(data.get("price")), money_text(data.get("cash"))
    amount = money_text(data.get("amount"))
    if name == TRIGGER_FIRED:
        if data.get("side") == "sell":
            return (f"Sell trigger fired: sold {shares} {symbol} @ {price} for "
                    f"{amount}; cash {cash}")
        refund = data.get("refund")
        extra = (f", {money_text(refund)} unspent back" if refund not in (None, "0.00")
                 else "")
        return (f"Buy trigger fired: bought {shares} {symbol} @ {price} for "
                f"{amount}{extra}; cash {cash}")
    if name == PENDING_EXPIRED:
        side = str(data.get("side", "")).upper()
        released = "cost returned" if data.get("side") == "buy" else "shares returned"
        return (f"Pending {side} #{data.get('txn')} expired: {shares} {symbol} @ {price}, "
                f"{released}; cash {cash}")
    return f"{name}: " + json.dumps(dict(data), separators=(",", ":"))


def describe_result(result: Mapping[str, Any]) -> str:
    """A reply's result as compact JSON, cut to RESULT_SHOWN characters."""
    text = json.dumps(dict(result), separators=(",", ":"))
    return text if len(text) <= RESULT_SHOWN else text[:RESULT_SHOWN - 1] + "…"


def command_of(line: str) -> str:
    """The command name of a request line: `BUY,u,ABC,1` -> `BUY`."""
    return line.split(",", 1)[0].strip().upper()
