"""Keys typed before a dialog has focused its first field."""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input

#: Tab and Shift+Tab move the focus at once, before the next key is routed (priority), so that
#: fast typing after a Tab lands in the next field rather than in the one just left.
FIELD_KEYS = [
    Binding("tab", "app.focus_next", "Next field", show=False, priority=True),
    Binding("shift+tab", "app.focus_previous", "Previous field", show=False, priority=True),
]


def deliver_early_key(screen: Screen, event: events.Key) -> None:
    """A character that reached the dialog itself rather than a field was typed before the dialog
    had focused one (fast typing, a paste without bracketed paste): give it to the field focused
    now, in the order typed, instead of losing it."""
    focused = screen.focused
    if (isinstance(focused, Input) and not focused.disabled and event.is_printable
            and event.character):
        event.stop()
        event.prevent_default()
        focused.insert_text_at_cursor(event.character)
