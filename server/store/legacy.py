"""Data written before the journal (one shared `daytrade.sqlite` of account documents, or the
same collections in MongoDB): recognised, and refused with what to do."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from server.store.factory import is_mongo, sqlite_location


class LegacyData(RuntimeError):
    """The location holds data of the layout before the journal."""


def legacy_sqlite_file(location: str) -> Path | None:
    """The pre-journal SQLite file at a data directory location, or None if there is none."""
    if is_mongo(location):
        return None
    path = sqlite_location(location)[0] / "daytrade.sqlite"
    if not path.exists():
        return None
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        row = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'accounts'").fetchone()
    return path if row is not None else None


def refuse_legacy_data(location: str) -> None:
    """Raise LegacyData, saying what to do, if `location` holds pre-journal data."""
    path = legacy_sqlite_file(location)
    if path is not None:
        raise LegacyData(
            f"{path} was written by a daytrade before the journal (one shared file of account "
            f"documents); this version keeps a journal per shard and cannot read it. Dump its "
            f"audit log with the older version (DUMPLOG), then start on a new --data-dir; the "
            f"old directory is left untouched.")
