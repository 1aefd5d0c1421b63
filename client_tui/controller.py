"""What the screens ask of the app (the controller): a Protocol, so screens need not import it."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from client_tui.model.history import HistoryFilter
from client_tui.model.intents import Intent
from client_tui.model.triggers import TriggerRow


class Trader(Protocol):
    """User actions that need the session, run by the app in workers."""

    # The dialog openers return an awaitable that resolves once the dialog is mounted (None when
    # nothing opened).

    def open_ticket(self, side: str, symbol: str = "", amount: int | None = None,
                    place: bool = False) -> Awaitable[object] | None: ...

    def open_trigger(self, row: TriggerRow | None = None,
                     symbol: str = "") -> Awaitable[object] | None: ...

    def open_add_funds(self) -> Awaitable[object] | None: ...

    def open_help(self) -> None: ...

    def refresh_all(self) -> None: ...

    def watch(self, symbol: str) -> None: ...

    def unwatch(self, symbol: str) -> None: ...

    def settle(self, action: str, side: str, txn: int | None = None) -> None: ...

    def cancel_trigger(self, row: TriggerRow) -> None: ...

    def export_history(self, flt: HistoryFilter) -> None: ...

    def run_intent(self, intent: Intent) -> None: ...

    @property
    def logged_in(self) -> bool: ...
