"""Orders view: pending buys and sells with the server's expiry countdown, committed or cancelled
from the row. The server settles the newest pending order of a side, so only that row offers it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Label

from client_tui.model import format as fmt
from client_tui.view_context import ViewContext
from client_tui.widgets import cells
from client_tui.widgets.table import TradeTable
from client_tui.widgets.text import set_content
from protocol.limits import PENDING_LIFETIME_MS

COLUMNS = [("Side", 5), ("Txn", 7, "right"), ("Symbol", 6), ("Shares", 8, "right"),
           ("Price", 10, "right"), ("Amount", 13, "right"), ("Expires in", 10, "right"),
           ("Action", 30)]
#: Under this many ms left the countdown turns red.
URGENT_MS = 10_000
PAST = {"commit": "committed", "cancel": "cancelled"}


class OrdersView(Vertical):
    """Enter (or Commit) commits the highlighted newest order; x (or Cancel) cancels it."""

    BINDINGS = [
        Binding("x,delete", "settle('cancel')", "Cancel", tooltip="cancel the order"),
        Binding("c", "settle('commit')", "Commit order", show=False),
    ]

    class SettleRequested(Message):
        """COMMIT or CANCEL the newest pending order of `side` (`txn` is the row's order)."""

        def __init__(self, action: str, side: str, txn: int) -> None:
            super().__init__()
            self.action = action
            self.side = side
            self.txn = txn

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._newest: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield TradeTable(COLUMNS, id="orders-table")
        with Horizontal(classes="toolbar"):
            yield Button("Commit (⏎)", id="orders-commit", variant="success")
            yield Button("Cancel (x)", id="orders-cancel", variant="error")
            yield Label("", id="orders-note", classes="note")

    @property
    def table(self) -> TradeTable:
        return self.query_one("#orders-table", TradeTable)

    def show(self, ctx: ViewContext) -> None:
        store = ctx.store
        self._newest = {}
        rows = []
        for side in ("buy", "sell"):
            newest = store.newest_pending(side)
            if newest is not None:
                self._newest[side] = newest.txn
        for order in store.orders():
            left = order.expires_at - ctx.server_now_ms
            is_newest = self._newest.get(order.side) == order.txn
            action = (Text("⏎ commit · x cancel", style="bold") if is_newest
                      else Text(f"after #{self._newest.get(order.side)} (newest first)",
                                style="dim"))
            rows.append((f"{order.side}:{order.txn}", (
                Text(order.side.upper(), style="bold green" if order.side == "buy"
                     else "bold red"),
                cells.right(f"#{order.txn}", "dim"), Text(order.symbol, style="bold"),
                cells.number(order.shares), cells.money(order.price),
                cells.money(order.amount),
                cells.right(fmt.countdown(left), "bold red" if left < URGENT_MS else "bold"),
                action)))
        self.table.show(rows)
        note = ("No pending orders. b buys, s sells." if not rows else
                f"Orders expire {PENDING_LIFETIME_MS // 1000} s after placing; the newest of a "
                "side settles first.")
        set_content(self.query_one("#orders-note", Label), note)

    def _selected(self) -> tuple[str, int] | None:
        key = self.table.selected_key
        if not key:
            return None
        side, txn = key.split(":")
        return side, int(txn)

    def action_settle(self, action: str) -> None:
        selected = self._selected()
        if selected is None:
            self.notify("No pending order to " + action, severity="warning")
            return
        side, txn = selected
        if self._newest.get(side) != txn:
            self.notify(f"Only the newest pending {side.upper()} (#{self._newest.get(side)}) "
                        f"can be {PAST[action]}: the server settles the newest first.",
                        severity="warning")
            return
        self.post_message(self.SettleRequested(action, side, txn))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_settle("commit")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_settle("commit" if event.button.id == "orders-commit" else "cancel")
