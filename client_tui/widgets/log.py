"""Log view: every request with its reply or error code and latency, pushed events, connection
changes and toasts; newest first. The connection's keep-alive PINGs show as the header's
round-trip time instead (a failed one is logged)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label

from client_tui.model import format as fmt
from client_tui.view_context import ViewContext
from client_tui.widgets import cells
from client_tui.widgets.table import TradeTable
from client_tui.widgets.text import set_content

#: Fixed widths: a long request or result is cut, never pushing the latency out of sight.
COLUMNS = [("Time", 8), ("Kind", 10), ("Request", 30), ("Result", 50), ("Latency", 10, "right")]
KIND_STYLE = {"ok": "green", "error": "bold red", "event": "bold magenta",
              "connection": "bold yellow", "notice": "cyan"}
#: Entries shown at most (newest).
SHOWN = 300


class LogView(Vertical):
    """The session's activity."""

    def compose(self) -> ComposeResult:
        yield TradeTable(COLUMNS, id="log-table")
        yield Label("", id="log-count", classes="note")

    def show(self, ctx: ViewContext) -> None:
        entries = list(ctx.store.activity)[-SHOWN:]
        rows = []
        for e in reversed(entries):
            result = Text(e.detail, no_wrap=True, overflow="ellipsis")
            if e.code:
                result = Text.assemble((e.code, "bold red"), ": ", e.detail, no_wrap=True,
                                       overflow="ellipsis")
            latency = (cells.right("") if e.latency_ms is None
                       else cells.right(f"{e.latency_ms:.1f} ms"))
            rows.append((str(e.seq), (Text(fmt.clock(e.at_ms, ctx.tz), style="dim"),
                                      Text(e.kind, style=KIND_STYLE.get(e.kind, "")),
                                      Text(e.request, no_wrap=True, overflow="ellipsis"),
                                      result, latency)))
        self.query_one("#log-table", TradeTable).show(rows)
        set_content(self.query_one("#log-count", Label),
                    f"{len(ctx.store.activity)} entries, {ctx.store.activity.errors} errors")
