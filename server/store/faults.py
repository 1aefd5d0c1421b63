"""Fault injection around a journal, for the reliability battery: a slow or failing append.

`open_journal` wraps every journal it opens when DAYTRADE_STORE_FAULTS is set, e.g. `slow:0.5`
(each `append` first sleeps 0.5 s) or `fail_every:7` (every 7th `append` of a process raises
StoreFault before writing anything); both may be given, separated by a comma. Everything else
passes straight through to the real journal.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.store.journal_port import ShardJournal

ENV = "DAYTRADE_STORE_FAULTS"


class StoreFault(RuntimeError):
    """The failure a fault-injecting journal raises instead of appending."""


@dataclass(frozen=True)
class StoreFaults:
    """What to do to commits: sleep `slow_s` first; fail every `fail_every`-th (0: never)."""

    slow_s: float = 0.0
    fail_every: int = 0


def parse_faults(spec: str) -> StoreFaults:
    """`slow:<seconds>` and/or `fail_every:<n>`, comma-separated; ValueError for anything else."""
    slow_s, fail_every = 0.0, 0
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, value = part.partition(":")
        if name == "slow":
            slow_s = float(value)
            if not slow_s >= 0:  # also refuses NaN
                raise ValueError(f"{ENV}: slow needs seconds >= 0, not {value!r}")
        elif name == "fail_every":
            fail_every = int(value)
            if fail_every < 1:
                raise ValueError(f"{ENV}: fail_every needs n >= 1, not {value!r}")
        else:
            raise ValueError(f"{ENV}: unknown fault {part!r} (slow:<s>, fail_every:<n>)")
    return StoreFaults(slow_s, fail_every)


class FaultyJournal:
    """A journal whose `append` is slowed down (by `sleep`) or fails as `faults` say."""

    def __init__(self, inner: ShardJournal, faults: StoreFaults,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._inner = inner
        self._faults = faults
        self._sleep = sleep
        self._commits = 0
        self._lock = threading.Lock()

    def append(self, seq: int, max_txn: int, data: bytes) -> None:
        if self._faults.slow_s:
            self._sleep(self._faults.slow_s)
        with self._lock:
            self._commits += 1
            failing = self._faults.fail_every and self._commits % self._faults.fail_every == 0
        if failing:
            raise StoreFault(f"injected failure of commit #{self._commits} ({ENV})")
        self._inner.append(seq, max_txn, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def with_faults_from_env(journal: ShardJournal) -> ShardJournal:
    """`journal` itself, or wrapped in a FaultyJournal when DAYTRADE_STORE_FAULTS is set."""
    spec = os.environ.get(ENV, "")
    if not spec:
        return journal
    return FaultyJournal(journal, parse_faults(spec))  # type: ignore[return-value]
