"""Give the calling thread its name at the OS level, best effort.

Python 3.11 names its threads for Python only: the kernel keeps the name the thread inherited
(the process's), so `top -H`, `ps -L`, /proc/<pid>/task/<tid>/comm and `daytrade bench`'s CPU per
thread cannot tell a shard's commit thread from its reactor thread. On Linux this sets the
kernel's name (at most 15 bytes) with prctl(PR_SET_NAME); elsewhere, or if that fails, nothing
happens.
"""

from __future__ import annotations

import ctypes
import functools
import sys

PR_SET_NAME = 15
#: The kernel keeps 15 bytes of a thread's name (16 with the terminating NUL).
MAX_NAME_BYTES = 15


@functools.cache
def _prctl() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def set_native_name(name: str) -> bool:
    """Name the calling thread `name` (cut to 15 bytes) for the OS; True if that was done."""
    prctl = _prctl()
    if prctl is None:
        return False
    raw = name.encode("utf-8", "replace")[:MAX_NAME_BYTES]
    try:
        return prctl(PR_SET_NAME, ctypes.c_char_p(raw), 0, 0, 0) == 0
    except (OSError, ctypes.ArgumentError, TypeError):
        return False
