"""The top line: user, cash, reserved, total value, connection badge with PING time, clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from rich.text import Text
from textual.widgets import Static

from client_tui.connection import ConnState
from client_tui.model import format as fmt
from client_tui.model.portfolio import Totals
from client_tui.widgets.text import set_content


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """The connection as the header shows it."""

    state: ConnState
    rtt_ms: float | None = None
    retry_at_ms: int | None = None


BADGE_STYLE = {
    ConnState.CONNECTED: ("●", "bold green"),
    ConnState.CONNECTING: ("◌", "bold yellow"),
    ConnState.RECONNECTING: ("◌", "bold yellow"),
    ConnState.OFFLINE: ("○", "bold red"),
}


def badge(link: LinkStatus, now_ms: int, compact: bool = False) -> Text:
    """`● connected 3.1 ms`, `◌ reconnecting 0:02`, `○ offline` (compact: the mark only when
    connected)."""
    mark, style = BADGE_STYLE[link.state]
    shown = mark if compact and link.state == ConnState.CONNECTED else f"{mark} {link.state}"
    text = Text(shown, style=style)
    if link.state == ConnState.CONNECTED and link.rtt_ms is not None:
        text.append(f" {link.rtt_ms:.1f} ms", style="green")
    elif link.state == ConnState.RECONNECTING and link.retry_at_ms is not None:
        text.append(f" {fmt.countdown(link.retry_at_ms - now_ms)}", style="yellow")
    return text


class AccountHeader(Static):
    """One line across the top of the dashboard."""

    def show(self, user: str, totals: Totals, link: LinkStatus, now_ms: int,
             tz: tzinfo | None) -> None:
        value = fmt.money(totals.total_value) + ("*" if totals.unpriced else "")
        cash, reserved = fmt.money(totals.cash), fmt.money(totals.reserved)
        line = self._line(("daytrade ", "Cash ", "Reserved ", "Value "), user, cash, reserved,
                          value, badge(link, now_ms), fmt.clock(now_ms, tz))
        width = self.size.width
        if width and line.cell_len > width:
            line = self._line(("", "Cash ", "Rsv ", "Value "), user, cash, reserved, value,
                              badge(link, now_ms, compact=True), fmt.clock(now_ms, tz))
        set_content(self, line, layout=False)

    @staticmethod
    def _line(labels: tuple[str, str, str, str], user: str, cash: str, reserved: str,
              value: str, link: Text, clock: str) -> Text:
        sep = (" │ ", "dim")
        title, cash_label, reserved_label, value_label = labels
        head = [(f" {title}", "bold reverse"), " "] if title else [" "]
        return Text.assemble(
            *head, (user or "-", "bold"), sep,
            (cash_label, "dim"), (cash, "bold"), sep,
            (reserved_label, "dim"), (reserved, "bold"), sep,
            (value_label, "dim"), (value, "bold cyan"), sep,
            link, sep, (clock, "bold"),
            no_wrap=True, overflow="ellipsis")
