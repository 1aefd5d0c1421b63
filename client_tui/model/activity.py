"""The Log view's entries: every request, its reply or error with latency, pushed events, and
connection changes, newest last, bounded."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

#: Entries kept; older ones are dropped.
KEPT = 1_000


@dataclass(frozen=True, slots=True)
class LogEntry:
    """`kind`: `ok`, `error`, `event` or `connection`; `code`: the error code, if any."""

    seq: int
    at_ms: int
    kind: str
    request: str
    detail: str
    code: str = ""
    latency_ms: float | None = None


class ActivityLog:
    """A bounded, numbered list of LogEntry."""

    def __init__(self, kept: int = KEPT) -> None:
        self._entries: deque[LogEntry] = deque(maxlen=kept)
        self._seq = 0

    def add(self, at_ms: int, kind: str, request: str, detail: str, code: str = "",
            latency_ms: float | None = None) -> LogEntry:
        self._seq += 1
        entry = LogEntry(self._seq, at_ms, kind, request, detail, code, latency_ms)
        self._entries.append(entry)
        return entry

    def __iter__(self) -> Iterator[LogEntry]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def errors(self) -> int:
        return sum(1 for e in self._entries if e.kind == "error")


#: The Log view's kind filter: label -> entry kinds ("" means every kind).
KINDS: dict[str, tuple[str, ...]] = {
    "": (),
    "requests": ("ok", "error"),
    "errors": ("error",),
    "events": ("event",),
    "notices": ("notice",),
    "connection": ("connection",),
}


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Entries of the kind group `kind` (a KINDS key) whose text contains `text` (any case)."""

    kind: str = ""
    text: str = ""

    def matches(self, entry: LogEntry) -> bool:
        kinds = KINDS.get(self.kind, ())
        if kinds and entry.kind not in kinds:
            return False
        needle = self.text.strip().lower()
        if not needle:
            return True
        return any(needle in part.lower()
                   for part in (entry.kind, entry.request, entry.detail, entry.code))
