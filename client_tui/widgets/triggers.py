"""Triggers view: buy and sell triggers, armed or not, what they reserve, their price and how far
the last quote is from firing them; edit (Enter, e) and cancel (x) in place."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Label

from client_tui.model.triggers import TriggerRow, crossed, distance_bp
from client_tui.view_context import ViewContext
from client_tui.widgets import cells
from client_tui.widgets.table import TradeTable
from client_tui.widgets.text import set_content

COLUMNS = [("Side", 5), ("Symbol", 6), ("State", 10), ("Amount", 13, "right"),
           ("Reserved", 13, "right"), ("Trigger @", 10, "right"), ("Last", 10, "right"),
           ("To trigger", 15, "right")]


class TriggersView(Vertical):
    """Both trigger tables in one."""

    BINDINGS = [
        Binding("e", "edit", "Edit", tooltip="edit the trigger"),
        Binding("x,delete", "cancel_trigger", "Cancel", tooltip="cancel the trigger"),
    ]

    class EditRequested(Message):
        def __init__(self, row: TriggerRow) -> None:
            super().__init__()
            self.row = row

    class CancelRequested(Message):
        def __init__(self, row: TriggerRow) -> None:
            super().__init__()
            self.row = row

    class NewRequested(Message):
        """Open the set-trigger dialog."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._rows: dict[str, TriggerRow] = {}

    def compose(self) -> ComposeResult:
        yield TradeTable(COLUMNS, id="triggers-table")
        with Horizontal(classes="toolbar"):
            yield Button("New (t)", id="triggers-new", variant="primary")
            yield Button("Edit (e)", id="triggers-edit")
            yield Button("Cancel (x)", id="triggers-cancel", variant="error")
            yield Label("", id="triggers-note", classes="note")

    @property
    def table(self) -> TradeTable:
        return self.query_one("#triggers-table", TradeTable)

    def show(self, ctx: ViewContext) -> None:
        prices = ctx.store.quotes.last_prices()
        self._rows = {}
        rows = []
        for trig in ctx.store.triggers():
            self._rows[trig.key] = trig
            last = prices.get(trig.symbol)
            if not trig.armed:
                state, distance = Text("not armed", style="dim"), cells.right("—", "dim")
            elif last is None:
                state, distance = Text("armed", style="bold"), cells.right("no quote", "dim")
            elif crossed(trig.side, trig.trigger_price, last):
                state = Text("armed", style="bold")
                distance = cells.right("crossed: fires", "bold yellow")
            else:
                state = Text("armed", style="bold")
                distance = cells.pct(distance_bp(trig.trigger_price, last))
            reserved = (cells.money(trig.amount) if trig.side == "buy"
                        else cells.right(f"{trig.reserved_shares:,} sh"))
            rows.append((trig.key, (
                Text(trig.side.upper(), style="bold green" if trig.side == "buy"
                     else "bold red"),
                Text(trig.symbol, style="bold"), state, cells.money(trig.amount), reserved,
                cells.money(trig.trigger_price), cells.money(last), distance)))
        self.table.show(rows)
        set_content(self.query_one("#triggers-note", Label),
                    "No triggers. t sets one." if not rows else
                    "A buy fires at or below its price, a sell at or above, at the next sweep.")

    def _selected(self) -> TriggerRow | None:
        key = self.table.selected_key
        return self._rows.get(key) if key else None

    def action_edit(self) -> None:
        row = self._selected()
        if row is not None:
            self.post_message(self.EditRequested(row))

    def action_cancel_trigger(self) -> None:
        row = self._selected()
        if row is not None:
            self.post_message(self.CancelRequested(row))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_edit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "triggers-new":
            self.post_message(self.NewRequested())
        elif event.button.id == "triggers-edit":
            self.action_edit()
        else:
            self.action_cancel_trigger()
