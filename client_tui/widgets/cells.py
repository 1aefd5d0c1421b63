"""Table cells shared by the views: money right-aligned, P&L in colour, ages by freshness."""

from __future__ import annotations

from rich.text import Text

from client_tui.model import format as fmt
from client_tui.model.quotes import Freshness, freshness

FRESHNESS_STYLE = {Freshness.FRESH: "green", Freshness.AGING: "bold yellow",
                   Freshness.STALE: "bold red"}


def right(text: str, style: str = "") -> Text:
    return Text(text, style=style, justify="right")


def money(cents: int | None, style: str = "") -> Text:
    return right("—" if cents is None else fmt.money(cents), style)


def pnl(cents: int | None) -> Text:
    if cents is None:
        return right("—", "dim")
    return right(fmt.signed_money(cents), "green" if cents > 0 else "red" if cents < 0 else "")


def pct(bp: int | None) -> Text:
    if bp is None:
        return right("—", "dim")
    return right(fmt.percent(bp), "green" if bp > 0 else "red" if bp < 0 else "")


def quote_age(age_ms: int | None) -> Text:
    """A quote's age, green while it backs an order, amber near the end, red past it."""
    if age_ms is None:
        return right("—", "dim")
    return right(fmt.age(age_ms), FRESHNESS_STYLE[freshness(age_ms)])


def number(n: int) -> Text:
    return right(f"{n:,}")
