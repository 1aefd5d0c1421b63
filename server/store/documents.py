"""Facts about `Account.to_doc()` documents that every store adapter indexes."""

from __future__ import annotations

from typing import Any


def is_active(doc: dict[str, Any]) -> bool:
    """True if the account has a pending entry or a trigger, so a shard must load it at start."""
    return bool(doc["pending_buys"] or doc["pending_sells"]
                or doc["buy_triggers"] or doc["sell_triggers"])
