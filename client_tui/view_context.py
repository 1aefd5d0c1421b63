"""What every view is handed when it redraws: the store and the clocks (attributes down)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from client_tui.model.store import AccountStore


@dataclass(frozen=True, slots=True)
class ViewContext:
    """`now_ms` is the local clock; `server_now_ms` the server's, estimated from PING."""

    store: AccountStore
    now_ms: int
    server_now_ms: int
    tz: tzinfo | None = None
