"""Log view: every request with its reply or error code and latency, pushed events, connection
changes and toasts; newest first, filtered by kind and text. The connection's keep-alive PINGs
show as the header's round-trip time instead (a failed one is logged)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select

from client_tui.model import format as fmt
from client_tui.model.activity import KINDS, LogFilter
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

    _ctx: ViewContext | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Input(placeholder="filter: text in the entry", id="log-text")
            yield Select([(name, name) for name in KINDS if name], prompt="all kinds",
                         id="log-kind")
        yield TradeTable(COLUMNS, id="log-table")
        yield Label("", id="log-count", classes="note")

    @property
    def filter(self) -> LogFilter:
        kind = self.query_one("#log-kind", Select).value
        return LogFilter(kind if isinstance(kind, str) else "",
                         self.query_one("#log-text", Input).value)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self._ctx is not None:
            self.show(self._ctx)

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if self._ctx is not None:
            self.show(self._ctx)

    def show(self, ctx: ViewContext) -> None:
        self._ctx = ctx
        flt = self.filter
        matching = [e for e in ctx.store.activity if flt.matches(e)]
        entries = matching[-SHOWN:]
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
        total = len(ctx.store.activity)
        shown = "" if len(matching) == total else f"{len(matching):,} shown of "
        set_content(self.query_one("#log-count", Label),
                    f"{shown}{fmt.plural(total, 'entry', 'entries')}, "
                    f"{fmt.plural(ctx.store.activity.errors, 'error')}")
