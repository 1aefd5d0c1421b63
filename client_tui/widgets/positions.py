"""Positions view: shares owned, last price, value and unrealised P&L, with totals and cash."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label

from client_tui.model.format import ratio_bp
from client_tui.view_context import ViewContext
from client_tui.widgets import cells
from client_tui.widgets.table import TradeTable
from client_tui.widgets.text import set_content

COLUMNS = [("Symbol", 12), ("Shares", 9, "right"), ("Held", 7, "right"), ("Avg cost", 10, "right"),
           ("Last", 10, "right"), ("Value", 15, "right"), ("Unrealised P&L", 15, "right"),
           ("P&L %", 9, "right")]
#: Below this width the narrow columns are used: every column, the P&L ones included, in 80.
NARROW_BELOW = 100
NARROW_COLUMNS = [("Symbol", 8), ("Shares", 6, "right"), ("Held", 5, "right"),
                  ("Avg cost", 8, "right"), ("Last", 8, "right"), ("Value", 10, "right"),
                  ("P&L", 10, "right"), ("P&L %", 7, "right")]


def _bold(text: str) -> Text:
    return Text(text, style="bold")


class PositionsView(Vertical):
    """One row per symbol owned, then cash, reserved and the account's total value."""

    def compose(self) -> ComposeResult:
        yield TradeTable(COLUMNS, id="positions-table")
        yield Label("", id="positions-note", classes="note")

    def on_resize(self) -> None:
        narrow = 0 < self.size.width < NARROW_BELOW
        self.query_one(TradeTable).set_columns(NARROW_COLUMNS if narrow else COLUMNS)
        if self._ctx is not None:
            self.show(self._ctx)

    _ctx: ViewContext | None = None

    def show(self, ctx: ViewContext) -> None:
        self._ctx = ctx
        store = ctx.store
        rows = []
        positions = store.positions()
        for p in positions:
            rows.append((p.symbol, (
                _bold(p.symbol), cells.number(p.shares),
                cells.number(p.held_shares) if p.held_shares else cells.right("", "dim"),
                cells.money(p.average_cost), cells.money(p.last_price), cells.money(p.value),
                cells.pnl(p.unrealised),
                cells.pct(ratio_bp(p.unrealised, p.cost) if p.unrealised is not None and p.cost
                          else None))))
        totals = store.totals()
        blank = cells.right("")
        cost = sum(p.cost or 0 for p in positions if p.value is not None)
        rows.append(("_holdings", (_bold("Holdings"), blank, blank, blank, blank,
                                   cells.money(totals.holdings_value, "bold"),
                                   cells.pnl(totals.unrealised),
                                   cells.pct(ratio_bp(totals.unrealised, cost) if cost else None))))
        rows.append(("_cash", (_bold("Cash"), blank, blank, blank, blank,
                               cells.money(totals.cash, "bold"), blank, blank)))
        rows.append(("_reserved", (_bold("Reserved"), blank, blank, blank, blank,
                                   cells.money(totals.reserved, "bold"), blank, blank)))
        rows.append(("_total", (Text("Total", style="bold cyan"), blank, blank, blank,
                                blank, cells.money(totals.total_value, "bold cyan"), blank,
                                blank)))
        self.query_one(TradeTable).show(rows)
        notes = ["Held: shares in pending sells and sell triggers (still yours).",
                 "Average cost from your own fills; P&L at the last quote."]
        if not store.history.complete:
            notes.append(f"History {len(store.history)}/{store.history.total} loaded: "
                         "averages may be off.")
        if totals.unpriced:
            notes.append("* no quote yet for " + ", ".join(totals.unpriced) + ".")
        set_content(self.query_one("#positions-note", Label), " ".join(notes))

