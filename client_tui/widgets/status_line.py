"""The bottom status line: the last failure (code and message) or the connection's news."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from client_tui.widgets.text import set_content


class StatusLine(Static):
    """Shows the last error until something succeeds; never a silent spinner."""

    def show_error(self, text: str) -> None:
        set_content(self, Text.assemble(("✖ ", "bold red"), (text, "red"), no_wrap=True,
                                        overflow="ellipsis"), layout=False)
        self.set_class(True, "-error")

    def show_info(self, text: str) -> None:
        set_content(self, Text.assemble(("• ", "dim"), (text, ""), no_wrap=True,
                                        overflow="ellipsis"), layout=False)
        self.set_class(False, "-error")
