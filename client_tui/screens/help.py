"""The help overlay (?): every key and what it does; compact, and scrollable when cut."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from client_tui.model.quotes import AMBER_AFTER_MS
from protocol.limits import PENDING_LIFETIME_MS, QUOTE_LIFETIME_MS

KEYS = (
    ("1 … 6", "Watchlist, Positions, Orders, Triggers, History, Log"),
    ("/", "add a symbol to the watchlist"),
    ("b / s", "order ticket: buy / sell the highlighted symbol"),
    ("t", "set a buy or sell trigger"),
    ("a", "add funds"),
    ("r", "refresh the account and the quotes (nothing is polled)"),
    ("j / k, ↑ / ↓", "move in a table"),
    ("Enter", "buy (watchlist) · commit (orders) · edit (triggers)"),
    ("x, Delete", "remove (watchlist) · cancel (orders, triggers)"),
    ("e", "triggers: edit · history: export CSV"),
    ("Esc", "close a dialog · cancel a ticket's pending order"),
    ("Ctrl+P", "palette: buy ABC 100 · trigger buy ABC 500 @ 12.50"),
    ("?", "this help"),
    ("q", "quit"),
)


def keys_table() -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, what in KEYS:
        table.add_row(key, what)
    return table


class HelpScreen(ModalScreen[None]):
    """Any of Esc, ? or q closes it."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", priority=True)]

    def __init__(self) -> None:
        super().__init__(classes="dialog")

    def compose(self) -> ComposeResult:
        # Scrolls when the terminal is too small for it (80x24 shows it whole).
        with VerticalScroll(id="help-box"):
            yield Static(" KEYS ", classes="dialog-title")
            yield Static(keys_table())
            yield Static(f"Quotes back orders for {QUOTE_LIFETIME_MS // 1000} s (age amber from "
                         f"{AMBER_AFTER_MS // 1000} s, red after). Pending orders expire "
                         f"{PENDING_LIFETIME_MS // 1000} s after placing. The mouse works too.",
                         classes="note")

    def action_close(self) -> None:
        self.dismiss(None)
