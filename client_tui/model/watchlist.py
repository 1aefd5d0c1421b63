"""The watchlist kept between sessions: one JSON file per user in the XDG data directory
(`$XDG_DATA_HOME/daytrade/watchlist-<user>.json`, by default under ~/.local/share), and the rule
that puts the symbols the user owns on it."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from protocol.limits import SYMBOL

#: Characters kept from a user id in a file name (ids are letters, digits and _ anyway).
UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """`$XDG_DATA_HOME/daytrade`, or `~/.local/share/daytrade` when it is unset or relative."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "daytrade"


def watchlist_path(data_dir: Path, user: str) -> Path:
    return data_dir / f"watchlist-{UNSAFE.sub('_', user) or '_'}.json"


def load(path: Path) -> list[str]:
    """The saved symbols, in order; a missing or unreadable file is an empty list (never raises)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    symbols = data.get("symbols", []) if isinstance(data, dict) else []
    if not isinstance(symbols, list):
        return []
    return merged([s for s in symbols if isinstance(s, str) and SYMBOL.fullmatch(s)])


def save(path: Path, symbols: Iterable[str]) -> None:
    """Write atomically (a temporary file renamed over the old one); raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"version": 1, "symbols": list(symbols)}) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def merged(*lists: Iterable[str]) -> list[str]:
    """The symbols of every list, each once, in first-seen order."""
    return list(dict.fromkeys(s for symbols in lists for s in symbols))
