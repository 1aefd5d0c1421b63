"""Child processes that do not outlive the process that started them.

`daytrade up` starts Redis, the quote simulator and the shards. When it is SIGKILLed it cannot
stop them, and a Redis left behind kept its port and data dir until someone found it. On Linux
the kernel can signal a child when its parent dies (PR_SET_PDEATHSIG); elsewhere this does
nothing and a clean stop remains the only way.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Looked up before any fork: a preexec function should do as little as it can.
_PRCTL = _prctl()


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Have the kernel send `sig` to this process when `parent` (its parent now) dies; if it
    is already gone, exit at once."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:  # died before the request was in place
        os._exit(1)


def ends_with_this_process() -> Callable[[], None]:
    """A `preexec_fn` for subprocess.Popen: the child ends when this process does (the
    signal comes when the thread that started the child ends: start them from the main one)."""
    parent = os.getpid()
    return lambda: die_with_parent(parent)
