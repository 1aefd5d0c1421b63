"""Replay a workload through the parser and the pure engine in one process, with no server.

Prices come from a deterministic function of symbol and minute; each command advances a virtual
clock by `step_ms`; quotes are cached for their 60 s life like the server's cache; triggers are
swept and pending entries expired every `sweep_ms` of virtual time; effects are drained (and
dropped) every `drain_every` commands as a group commit would. It measures parse + engine speed
and gives golden reply-code counts; it writes no DUMPLOG file (the DUMPLOG reply counts events).

The cyclic garbage collector runs with a generation-0 threshold of 10,000 allocations (Python's
default is 700) during a replay: the engine keeps every transaction record, and records are
NamedTuples, which the collector never untracks (it untracks only exact tuples), so with the
default every full collection re-walks the whole history; that was about a sixth of the replay's
time. Shard processes tune their collector for the same reason (server/shards/worker.py).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from bench.workload import open_text, resolve
from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import QUOTE_LIFETIME_MS
from protocol.parser import parse_request
from protocol.quote import PriceQuote
from protocol.replies import Reply, error_from
from server.shards.engine import DumpRequest, Engine, NeedQuote

START_MS = 1_764_072_000_000  # 2025-11-25 12:00 UTC: inside the audit schema's window
PriceFn = Callable[[str, int], int]
GC_THRESHOLD = 10_000  # generation 0 allocations between collections (see the module docstring)


def minute_price(symbol: str, now: int) -> int:
    """A deterministic price in cents ($1.00 to $500.00) that changes every minute."""
    return 100 + zlib.crc32(f"{symbol}:{now // 60_000}".encode()) % 49_901


def table_price(table: dict[str, int], default: PriceFn = minute_price) -> PriceFn:
    """Fixed prices for the symbols in `table`, `default` for the rest."""
    def price(symbol: str, now: int) -> int:
        p = table.get(symbol)
        return p if p is not None else default(symbol, now)
    return price


@dataclass
class ReplayResult:
    """What a replay answered: one reply per request, counted by error code ("ok" for success)."""

    commands: int = 0
    seconds: float = 0.0
    codes: Counter[str] = field(default_factory=Counter)
    by_command: Counter[tuple[str, str]] = field(default_factory=Counter)
    quote_fetches: int = 0
    events: int = 0
    triggers_fired: int = 0
    replies: list[Reply] | None = None

    @property
    def per_second(self) -> float:
        return self.commands / self.seconds if self.seconds else 0.0


class QuoteBook:
    """The replay's quote cache: one fetch per symbol per 60 s life, like the server's."""

    def __init__(self, price: PriceFn) -> None:
        self._price = price
        self.cache: dict[str, PriceQuote] = {}  # symbol -> its latest quote
        self.fetches = 0

    def get(self, symbol: str, user: str, now: int) -> PriceQuote:
        q = self.cache.get(symbol)
        if q is not None and now < q.quote_time + QUOTE_LIFETIME_MS:  # q.usable_at(now)
            if q.fresh:  # its first use from the cache; most fetched quotes never get one
                q = self.cache[symbol] = q.cached()
            return q
        self.fetches += 1
        key = f"{zlib.crc32(f'{symbol}{user}{now}'.encode()):08x}"
        fresh = self.cache[symbol] = _fresh_quote(symbol, self._price(symbol, now), now, key,
                                                   user)
        return fresh


_set_symbol, _set_price, _set_time, _set_key, _set_user, _set_fresh = (
    getattr(PriceQuote, f.name).__set__ for f in fields(PriceQuote))


def _fresh_quote(symbol: str, price: int, quote_time: int, cryptokey: str,
                 user: str) -> PriceQuote:
    """PriceQuote(..., fresh=True) without the frozen dataclass __init__ (one per fetch)."""
    q = object.__new__(PriceQuote)
    _set_symbol(q, symbol)
    _set_price(q, price)
    _set_time(q, quote_time)
    _set_key(q, cryptokey)
    _set_user(q, user)
    _set_fresh(q, True)
    return q


def raw_requests(path: str | Path) -> Iterator[str]:
    """The request lines of a workload, `$ ` lines given a txn equal to their line number."""
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            if line.startswith("$ "):
                yield f"[{number}] {line[2:]}"
            elif line.strip():
                yield line


def replay(lines: Iterable[str], price: PriceFn = minute_price, *, step_ms: int = 100,
           sweep_ms: int = 5_000, drain_every: int = 500, keep_replies: bool = False,
           progress: Callable[[int], None] | None = None) -> ReplayResult:
    """Replay request lines through parser + engine; see the module docstring."""
    thresholds = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
    try:
        return _replay(lines, price, step_ms, sweep_ms, drain_every, keep_replies, progress)
    finally:
        gc.set_threshold(*thresholds)


def _replay(lines: Iterable[str], price: PriceFn, step_ms: int, sweep_ms: int, drain_every: int,
            keep_replies: bool, progress: Callable[[int], None] | None) -> ReplayResult:
    engine = Engine("shard-0")
    execute = engine.execute
    book = QuoteBook(price)
    result = ReplayResult(replies=[] if keep_replies else None)
    replies = result.replies
    # (command, error code or None for success) -> replies; Counters are built once at the end
    counts: dict[tuple[str | None, ErrorCode | None], int] = {}
    now = START_MS
    next_sweep = now + sweep_ms
    # server-assigned txns for trigger firings, above any workload txn
    firing_txns = itertools.count(10**12 + 1)
    events = 0

    started = time.perf_counter()
    n = 0
    next_drain = drain_every
    for n, line in enumerate(lines, 1):
        now += step_ms
        if now >= next_sweep:
            engine.expire_due(now)
            cache = book.cache
            for symbol, user in engine.armed_symbols().items():
                q = cache.get(symbol)  # book.get(), its common case inlined: a usable cached quote
                if q is None or q.fresh or now >= q.quote_time + QUOTE_LIFETIME_MS:
                    q = book.get(symbol, user, now)
                result.triggers_fired += len(engine.fire_triggers(q, now, firing_txns))
            next_sweep = now + sweep_ms
        try:
            cmd = parse_request(line)
        except ProtocolError as exc:
            reply = error_from(exc)
        else:
            if cmd.txn is None:
                cmd = replace(cmd, txn=n)
            outcome = execute(cmd, now)
            if type(outcome) is NeedQuote:
                outcome = execute(cmd, now, book.get(outcome.symbol, outcome.user, now))
            if type(outcome) is DumpRequest:
                effects = engine.drain()
                events += len(effects.events)
                outcome = Reply(outcome.txn, "DUMPLOG", True,
                                {"path": None, "events": events})
            reply = outcome
        key = (reply.cmd, None if reply.ok else reply.code)
        counts[key] = counts.get(key, 0) + 1
        if replies is not None:
            replies.append(reply)
        if n == next_drain:
            next_drain += drain_every
            events += len(engine.drain().events)
            if progress is not None:
                progress(n)
    events += len(engine.drain().events)
    result.seconds = time.perf_counter() - started
    for (name, error), count in counts.items():
        code = "ok" if error is None else error.value
        result.codes[code] += count
        result.by_command[(name or "?", code)] += count
    result.commands = n
    result.quote_fetches = book.fetches
    result.events = events
    return result


def main(argv: list[str] | None = None) -> int:
    """`daytrade replay WORKLOAD`: parser + engine speed on a workload, with golden counts."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    ap = argparse.ArgumentParser(prog="daytrade replay", description=main.__doc__)
    ap.add_argument("workload", help="a workload file, or the name of a shipped one "
                                     "(1user.txt, 10user.txt, 100user.txt, final_2019_by_user.txt)")
    ap.add_argument("--step-ms", type=int, default=100, help="virtual time per command")
    args = ap.parse_args(argv)
    path = resolve(args.workload)
    console = Console(stderr=True)
    with open_text(path) as f:
        total = sum(1 for line in f if line.strip())
    lines = list(raw_requests(path))
    # No auto refresh: its thread would wake 10 times a second and take the GIL from the replay
    # to render; the bar is redrawn only when progress() moves it (every 20,000 commands).
    with Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), console=console, transient=True,
                  auto_refresh=False) as bar:
        task = bar.add_task("replay", total=total, rate="")
        bar.refresh()
        t0 = time.perf_counter()

        def progress(n: int) -> None:
            if n % 20_000 == 0:
                rate = n / max(time.perf_counter() - t0, 1e-9)
                bar.update(task, completed=n, rate=f"{rate:,.0f} commands/s", refresh=True)

        result = replay(lines, step_ms=args.step_ms, progress=progress)
    table = Table(title=f"{path.name}: parser + engine, one process")
    table.add_column("reply")
    table.add_column("count", justify="right")
    for code, count in sorted(result.codes.items(), key=lambda kv: -kv[1]):
        table.add_row(code, f"{count:,}")
    Console().print(table)
    print(f"{result.commands:,} commands in {result.seconds:.2f} s = "
          f"{result.per_second:,.0f} commands/s; {result.quote_fetches:,} quote fetches, "
          f"{result.events:,} audit events, {result.triggers_fired:,} triggers fired")
    return 0


if __name__ == "__main__":
    sys.exit(main())
