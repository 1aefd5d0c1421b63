"""History view: the user's transactions (paged in with DISPLAY_SUMMARY before_txn), filtered by
symbol and kind, exported as CSV."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Label, Select

from client_tui.model import format as fmt
from client_tui.model.history import KIND_FILTERS, HistoryFilter, filtered
from client_tui.view_context import ViewContext
from client_tui.widgets import cells
from client_tui.widgets.table import TradeTable
from client_tui.widgets.text import set_content
from protocol.limits import SYMBOL_MAX_LENGTH

COLUMNS = [("Time", 19), ("Txn", 7, "right"), ("Kind", 16), ("Symbol", 6), ("Shares", 8, "right"),
           ("Price", 10, "right"), ("Cash Δ", 14, "right")]
#: Rows shown at most (the newest that match); the CSV export has them all.
SHOWN = 500


class HistoryView(Vertical):
    """Transactions newest first."""

    BINDINGS = [Binding("e", "export", "Export CSV")]

    class ExportRequested(Message):
        def __init__(self, flt: HistoryFilter) -> None:
            super().__init__()
            self.filter = flt

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._ctx: ViewContext | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Input(placeholder="symbol filter", id="history-symbol",
                        max_length=SYMBOL_MAX_LENGTH)
            yield Select([(name, name) for name in KIND_FILTERS if name], prompt="all kinds",
                         id="history-kind")
            yield Button("Export CSV (e)", id="history-export")
            yield Label("", id="history-count", classes="note")
        yield TradeTable(COLUMNS, id="history-table")

    @property
    def filter(self) -> HistoryFilter:
        symbol = self.query_one("#history-symbol", Input).value.strip().upper()
        kind = self.query_one("#history-kind", Select).value
        return HistoryFilter(symbol, kind if isinstance(kind, str) else "")

    def show(self, ctx: ViewContext) -> None:
        self._ctx = ctx
        history = ctx.store.history
        matching = filtered(history.records, self.filter)
        rows = []
        for i, t in enumerate(matching[:SHOWN]):
            rows.append((f"{t.txn}:{t.time}:{t.kind}:{i}", (
                Text(fmt.timestamp(t.time, ctx.tz), style="dim"), cells.right(str(t.txn)),
                Text(t.kind), Text(t.symbol or "", style="bold"),
                cells.number(t.shares) if t.shares else cells.right(""),
                cells.money(t.price) if t.price is not None else cells.right(""),
                cells.pnl(t.cash_delta))))
        self.query_one("#history-table", TradeTable).show(rows)
        loaded = f"{len(history)} of {history.total} loaded"
        set_content(self.query_one("#history-count", Label),
                    f"{len(matching)} shown · {loaded}" if len(matching) <= SHOWN
                    else f"newest {SHOWN} of {len(matching)} shown · {loaded}")

    def _refilter(self) -> None:
        if self._ctx is not None:
            self.show(self._ctx)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._refilter()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._refilter()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_export()

    def action_export(self) -> None:
        self.post_message(self.ExportRequested(self.filter))
