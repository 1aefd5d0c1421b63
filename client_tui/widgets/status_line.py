"""The bottom status line: the last failure (code and message) or the connection's news."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from client_tui.widgets.text import set_content

#: What the status line says once an error has been seen and the user moved on.
IDLE = "r refreshes the account and quotes · ? shows every key"


class StatusLine(Static):
    """Shows the last error until the user's next action; never a silent spinner."""

    @property
    def showing_error(self) -> bool:
        return self.has_class("-error")

    def acknowledge(self) -> None:
        """The next action: an old error gives way to the idle hint."""
        if self.showing_error:
            self.show_info(IDLE)

    def show_error(self, text: str) -> None:
        set_content(self, Text.assemble(("✖ ", "bold red"), (text, "red"), no_wrap=True,
                                        overflow="ellipsis"), layout=False)
        self.set_class(True, "-error")

    def show_info(self, text: str) -> None:
        set_content(self, Text.assemble(("• ", "dim"), (text, ""), no_wrap=True,
                                        overflow="ellipsis"), layout=False)
        self.set_class(False, "-error")
