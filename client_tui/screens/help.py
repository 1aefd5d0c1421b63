"""The help overlay (?): every key and what it does."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = (
    ("1 … 6", "Watchlist, Positions, Orders, Triggers, History, Log"),
    ("/", "add a symbol to the watchlist"),
    ("b / s", "order ticket: buy / sell the highlighted symbol"),
    ("t", "set a buy or sell trigger"),
    ("a", "add funds"),
    ("j / k, ↑ / ↓", "move in a table"),
    ("Enter", "watchlist: buy · orders: commit the newest · triggers: edit"),
    ("x, Delete", "watchlist: remove · orders: cancel the newest · triggers: cancel"),
    ("e", "triggers: edit · history: export CSV"),
    ("Esc", "close a dialog; in a ticket with a pending order: cancel it"),
    ("Ctrl+P", "command palette: buy ABC 100 · sell ABC 50 · trigger buy ABC 500 @ 12.50"),
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
        with Vertical(id="help-box"):
            yield Static(" KEYS ", classes="dialog-title")
            yield Static(keys_table())
            yield Static("Quotes live 60 s: their age turns amber at 45 s and red when they "
                         "can no longer back an order. Pending orders expire 60 s after they "
                         "are placed. The mouse works too: tabs, rows, buttons.", classes="note")

    def action_close(self) -> None:
        self.dismiss(None)
