"""Watchlist view: quotes with their age, the change since the first quote seen this session, and
a sparkline each (one character per distinct quote, never stretched)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Label

from client_tui.model import format as fmt
from client_tui.model.format import ratio_bp
from client_tui.model.intents import IntentError, parse_symbol
from client_tui.model.quotes import MIN_CHART_POINTS, sparkline
from client_tui.view_context import ViewContext
from client_tui.widgets import cells
from client_tui.widgets.table import TradeTable
from client_tui.widgets.text import set_content
from protocol.limits import SYMBOL_MAX_LENGTH

TREND_WIDTH = 16
#: Quotes drawn at most in the highlighted symbol's chart line.
CHART_WIDTH = 40
COLUMNS = [("Symbol", 6), ("Last", 9, "right"), ("Change", 9, "right"), ("Chg %", 8, "right"),
           ("Age", 6, "right"), ("Trend", TREND_WIDTH), ("Owned", 7, "right")]


class WatchlistView(Vertical):
    """Symbols the user follows; Enter opens a buy ticket, x removes the symbol."""

    BINDINGS = [
        Binding("x,delete", "remove", "Remove"),
    ]

    class WatchRequested(Message):
        def __init__(self, symbol: str) -> None:
            super().__init__()
            self.symbol = symbol

    class UnwatchRequested(Message):
        def __init__(self, symbol: str) -> None:
            super().__init__()
            self.symbol = symbol

    class TradeRequested(Message):
        def __init__(self, side: str, symbol: str) -> None:
            super().__init__()
            self.side = side
            self.symbol = symbol

    def compose(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Input(placeholder="add a symbol (/), Enter", id="watch-input",
                        max_length=SYMBOL_MAX_LENGTH)
            yield Button("Buy", id="watch-buy", variant="success")
            yield Button("Sell", id="watch-sell", variant="error")
            yield Button("Remove", id="watch-remove")
        yield TradeTable(COLUMNS, id="watch-table")
        yield Label("", id="watch-chart")
        yield Label("Change: from the first quote seen this session · r refreshes quotes",
                    id="watch-note", classes="note")

    @property
    def table(self) -> TradeTable:
        return self.query_one("#watch-table", TradeTable)

    _ctx: ViewContext | None = None

    def show(self, ctx: ViewContext) -> None:
        self._ctx = ctx
        store = ctx.store
        owned = {p.symbol: p.shares for p in store.positions()}
        rows = []
        for symbol in store.watchlist:
            latest = store.quotes.latest(symbol)
            history = store.quotes.history(symbol)
            error = store.quote_errors.get(symbol)
            if latest is None:
                last = Text(error or "…", style="red" if error else "dim", justify="right")
                rows.append((symbol, (Text(symbol, style="bold"), last, cells.right("—"),
                                      cells.right("—"), cells.quote_age(None), "",
                                      cells.number(owned.get(symbol, 0)))))
                continue
            change = latest.price - history[0]
            rows.append((symbol, (
                Text(symbol, style="bold"), cells.money(latest.price),
                cells.pnl(change), cells.pct(ratio_bp(change, history[0])),
                cells.quote_age(latest.age_at(ctx.now_ms)),
                Text(sparkline(history, TREND_WIDTH) if len(history) >= MIN_CHART_POINTS
                     else "", style="cyan", no_wrap=True, overflow="crop"),
                cells.number(owned.get(symbol, 0)))))
        self.table.show(rows)
        self._show_chart(ctx)

    def _show_chart(self, ctx: ViewContext) -> None:
        """One line for the highlighted symbol: its quotes as a sparkline, low and high."""
        symbol = self.table.selected_key
        samples = ctx.store.quotes.samples(symbol) if symbol else []
        label = self.query_one("#watch-chart", Label)
        if not symbol:
            set_content(label, "Watchlist empty: press / to add a symbol.")
            return
        if not samples:
            set_content(label, f"{symbol}: no quote yet (r asks for one).")
            return
        history = [s.price for s in samples]
        since = fmt.clock(samples[0].quote_time, ctx.tz)
        text = Text.assemble((symbol, "bold"), f" since {since}: ", no_wrap=True,
                             overflow="ellipsis")
        if len(history) >= MIN_CHART_POINTS:
            text.append(sparkline(history, CHART_WIDTH), style="cyan")
            text.append(" ")
        text.append(f"{fmt.plural(len(history), 'quote')}, low {fmt.money(min(history))}, "
                    f"high {fmt.money(max(history))}", style="dim")
        set_content(label, text)

    def focus_input(self) -> None:
        self.query_one("#watch-input", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "watch-input":
            return
        event.stop()
        try:
            symbol = parse_symbol(event.value)
        except IntentError as exc:
            self.notify(str(exc), severity="error")
            return
        event.input.value = ""
        self.post_message(self.WatchRequested(symbol))
        self.table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.post_message(self.TradeRequested("buy", event.row_key.value))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if self._ctx is not None:
            self._show_chart(self._ctx)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        symbol = self.table.selected_key
        if event.button.id == "watch-remove":
            self.action_remove()
        elif symbol and event.button.id in ("watch-buy", "watch-sell"):
            self.post_message(self.TradeRequested(event.button.id.removeprefix("watch-"), symbol))

    def action_remove(self) -> None:
        symbol = self.table.selected_key
        if symbol:
            self.post_message(self.UnwatchRequested(symbol))
