"""Updating a Static only when its content changes: every update costs a layout and a redraw."""

from __future__ import annotations

from textual.visual import VisualType
from textual.widgets import Static


def set_content(widget: Static, content: VisualType, layout: bool = True) -> None:
    """`widget.update(content)` unless it already shows exactly that."""
    if widget.content != content:
        widget.update(content, layout=layout)


def set_line(widget: Static, content: VisualType) -> None:
    """`set_content`, and the widget takes no room while it has nothing to say."""
    set_content(widget, content)
    widget.display = bool(str(content))
