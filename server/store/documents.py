"""Facts about `Account.to_doc()` documents and reply rows that every store adapter shares."""

from __future__ import annotations

from typing import Any

from server.shards.account import RECENT_REPLIES

#: A stored reply as `Account.from_doc` takes it: (txn, canonical line, reply JSON).
ReplyRow = tuple[int, str, str]


def is_active(doc: dict[str, Any]) -> bool:
    """True if the account has a pending entry or a trigger, so a shard must load it at start."""
    return bool(doc["pending_buys"] or doc["pending_sells"]
                or doc["buy_triggers"] or doc["sell_triggers"])


def recent_replies(doc: dict[str, Any], newest_first: list[ReplyRow]) -> list[ReplyRow] | None:
    """The replies to hand `Account.from_doc`, oldest first, from a user's newest reply rows.

    None when there are no rows, so that a document of an older version falls back to the
    replies it carries (`recent`). A document that carries some and also has rows (rewritten
    part way through a MongoDB batch) gets both, newest RECENT_REPLIES by txn, rows winning.
    """
    if not newest_first:
        return None
    newest_first.reverse()
    embedded = doc.get("recent")
    if not embedded:
        return newest_first
    merged = {entry[0]: tuple(entry) for entry in embedded}
    merged.update((row[0], row) for row in newest_first)
    return [merged[txn] for txn in sorted(merged)[-RECENT_REPLIES:]]
