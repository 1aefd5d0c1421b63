"""Live processes read from /proc, for tests that check a command left nothing running."""

from __future__ import annotations

from pathlib import Path

#: Fields of /proc/<pid>/stat after the command name: 0 state, 1 ppid, 2 pgrp, 3 session.
PGRP, SESSION = 2, 3


def live_processes(field: int, value: int) -> list[int]:
    """Pids whose stat `field` (PGRP or SESSION) is `value`; zombies, which an init that does
    not reap leaves behind, do not count."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[field]) == value and fields[0] != "Z":
            found.append(int(entry.name))
    return found
