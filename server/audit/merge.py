"""DUMPLOG's order over the shards' journals, in bounded memory: a distribution sort on txn.

Why: each shard's journal holds its audit events in commit order, which is not the log's order
(txn, user or "", seq, server). It is not even nearly in order: a workload's users are all in
flight at once and each has its own range of txns, so commit order interleaves the whole range
(on final_2019, 99.9% of events sort below an earlier one). The whole log (~2.4M events on the
final workload) must not be held in memory.

How: events are held in memory until `run_size` of them have been read; a log that fits is
sorted there. A larger one is dealt into BUCKETS files by txn range (the range of the events
read so far; events beyond it go to the end buckets), each event written once and read back
once; the buckets are then sorted one at a time, in txn order, and handed out. A bucket still
larger than `run_size` (a skewed range) is dealt again over its own range, read a chunk at a
time; one txn with more than `run_size` events (never seen: a command has a handful) is sorted
in memory. server/audit/parallel_dump.py does the same work in worker processes with `deal`,
`Bucket` and `sorted_bucket_events`. Events keep
their order of arrival within a bucket and Python's sort is stable, so ties come out as a
stable sort of everything would give them.

The first version spilled each stream's in-order part and sorted its stragglers into runs,
then merged the runs (the `heapq.merge` shape): on the journals of a real final_2019 run it
took 10.5 s for 2.4M events, this one takes about 2 s (decoding the records, 2.8 s, and
writing the XML, 5 s, apart).

The cyclic garbage collector is paused while events are read and dealt, and while a bucket is
loaded: millions of new tuples, none of them garbage, made it rescan the growing buffers.
The bucket files live in one temporary directory, removed in a `finally`: after the last event,
when the consumer closes the generator early, or when it raises.
"""

from __future__ import annotations

import gc
import marshal
import shutil
import struct
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO

from server.shards.audit_events import AuditEvent

#: Files a too-large log is dealt into (each ~1/BUCKETS of the log when txns spread evenly).
BUCKETS = 64
#: Events per marshal chunk written to a bucket file. Small, so an event is written while it is
#: still in the CPU's caches: with 2048, BUCKETS x 2048 events waited in memory and dealing one
#: shard of final_2019 (1.2M events) took ~4.2 s, most of it marshal.dumps and list.clear
#: touching cold events; with 32 it takes ~1.8 s (decoding included).
CHUNK = 32
#: A chunk's byte length before it: `marshal.load` on a file reads it in small pieces (14.5 s
#: for 2.4M events), `marshal.loads` of one read a chunk does not.
_LENGTH = struct.Struct("<Q")
_TXN, _USER, _SEQ, _SERVER = (AuditEvent._fields.index(f)
                              for f in ("txn", "user", "seq", "server"))

_event = partial(tuple.__new__, AuditEvent)
_fast_key = itemgetter(_TXN, _USER, _SEQ, _SERVER)


def sort_key(event: Sequence[Any]) -> tuple[int, str, int, str]:
    """The log's order: (txn, user or "", seq, server)."""
    return (event[_TXN], event[_USER] or "", event[_SEQ], event[_SERVER])


def merged_events(streams: Sequence[Iterable[list[Sequence[Any]]]], *, user: str | None = None,
                  run_size: int = 200_000, spill_dir: str | Path | None = None
                  ) -> Iterator[AuditEvent]:
    """Every event of every stream (only `user`'s when given) in the log's order, lazily.

    Each stream is one shard's journal: an iterable of per-record event lists in commit order
    (AuditEvents, or plain sequences of their fields), read once. Nothing is read before the
    first event is asked for; the first event comes once every stream has been read. At most
    about `run_size` events are held at a time; the rest goes to a temporary directory in
    `spill_dir` (tempfile's default when None), removed however the iteration ends (close the
    generator to end it early).
    """
    if run_size < 1:
        raise ValueError(f"run_size must be at least 1, not {run_size}")
    return _merged(streams, user, run_size, spill_dir)


def _merged(streams: Sequence[Iterable[list[Sequence[Any]]]], user: str | None, run_size: int,
            spill_dir: str | Path | None) -> Iterator[AuditEvent]:
    spill = SpillDir(spill_dir)
    try:
        events = _events(streams, user)
        with collector_paused():
            held = []
            for event in events:
                held.append(event)
                if len(held) > run_size:
                    break
            else:
                sort_events(held)
                fitted = True
            if len(held) > run_size:
                fitted = False
                buckets = _deal(held, events, spill)
        if fitted:
            yield from map(_event, held)
            return
        del held
        yield from sorted_bucket_events(buckets, run_size, spill)
    finally:
        spill.remove()


def _events(streams: Sequence[Iterable[list[Sequence[Any]]]],
            user: str | None) -> Iterator[Sequence[Any]]:
    for stream in streams:
        for record in stream:
            if user is None:
                yield from record
            else:
                for event in record:
                    if event[_USER] == user:
                        yield event


@contextmanager
def collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class SpillDir:
    """One temporary directory for the bucket files, made on the first spill."""

    def __init__(self, parent: str | Path | None) -> None:
        self.parent = parent
        self.dir: Path | None = None
        self.files = 0

    def new_file(self) -> Path:
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="dumplog-merge-", dir=self.parent))
        self.files += 1
        return self.dir / f"bucket-{self.files}"

    def remove(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


class Bucket:
    """Events of one txn range, in arrival order, as marshal chunks in files read one after the
    other: one file while it is being dealt into; several when a parallel dump joins the parts
    the shards' workers dealt (server/audit/parallel_dump.py)."""

    def __init__(self, *paths: Path, count: int = 0) -> None:
        self.paths = list(paths)
        self.count = count
        self._out: BinaryIO | None = None

    @property
    def path(self) -> Path:
        return self.paths[-1]

    def write(self, events: list[Sequence[Any]]) -> None:
        if self._out is None:
            self._out = open(self.path, "wb")  # noqa: SIM115 (closed by close())
        try:
            data = marshal.dumps(events)
        except ValueError:  # AuditEvents (a tuple subclass) rather than plain rows
            data = marshal.dumps([tuple(e) for e in events])
        self._out.write(_LENGTH.pack(len(data)))
        self._out.write(data)
        self.count += len(events)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def chunks(self) -> Iterator[list[Sequence[Any]]]:
        """The chunks as written, file by file: one chunk in memory at a time."""
        if not self.count:
            return
        for path in self.paths:
            try:
                f = open(path, "rb")  # noqa: SIM115 (closed below)
            except FileNotFoundError:  # a part nothing was dealt into
                continue
            with f:
                while header := f.read(_LENGTH.size):
                    (length,) = _LENGTH.unpack(header)
                    yield marshal.loads(f.read(length))

    def load(self) -> list[Sequence[Any]]:
        events: list[Sequence[Any]] = []
        for chunk in self.chunks():
            events += chunk
        return events

    def remove(self) -> None:
        for path in self.paths:
            path.unlink(missing_ok=True)


def sort_events(events: list[Sequence[Any]]) -> None:
    """Sort in the log's order, stably. The key is made in C where it can be: a user id is
    never empty, so only an event without a user (None) beside one with a user on the same
    txn and ... makes the C key fail; that sort starts again from the arrival order it kept."""
    arrival = list(events)
    try:
        events.sort(key=_fast_key)
    except TypeError:
        events[:] = arrival
        events.sort(key=sort_key)


def deal(events: Iterable[Sequence[Any]], low: int, high: int, buckets: list[Bucket]) -> None:
    """Deal `events` into `buckets` by txn over [low, high] in equal ranges, keeping their order
    of arrival in each; a txn outside the range goes to the end bucket on its side. Closes the
    buckets."""
    count = len(buckets)
    held: list[list[Sequence[Any]]] = [[] for _ in range(count)]
    width = (high - low) // count + 1
    last = count - 1
    for event in events:
        index = (event[_TXN] - low) // width
        index = 0 if index < 0 else last if index > last else index
        bucket = held[index]
        bucket.append(event)
        if len(bucket) == CHUNK:
            buckets[index].write(bucket)
            bucket.clear()
    for bucket, events_left in zip(buckets, held):
        if events_left:
            bucket.write(events_left)
        bucket.close()


def _deal(first: list[Sequence[Any]], rest: Iterable[Sequence[Any]],
          spill: SpillDir) -> list[Bucket]:
    """Deal `first` and then `rest` into buckets over the txn range of `first`."""
    buckets = [Bucket(spill.new_file()) for _ in range(BUCKETS)]
    deal(chain(first, rest), min(e[_TXN] for e in first), max(e[_TXN] for e in first), buckets)
    return buckets


def _txn_range(events: list[Sequence[Any]]) -> tuple[int, int]:
    txns = [e[_TXN] for e in events]
    return min(txns), max(txns)


def sorted_bucket_events(buckets: list[Bucket], run_size: int,
                         spill: SpillDir) -> Iterator[AuditEvent]:
    """The events of `buckets` (in txn order of their ranges), each bucket sorted, its files
    removed once read. A bucket of more than `run_size` events is dealt again over its own txn
    range, a chunk at a time, so no more than about `run_size` events are held."""
    for bucket in buckets:
        sub = None
        with collector_paused():
            if bucket.count > run_size:
                ranges = [_txn_range(chunk) for chunk in bucket.chunks()]  # one in memory
                low = min(r[0] for r in ranges)
                high = max(r[1] for r in ranges)
                if low != high:  # a skewed range: deal it over its own
                    sub = [Bucket(spill.new_file()) for _ in range(BUCKETS)]
                    deal(chain.from_iterable(bucket.chunks()), low, high, sub)
            if sub is None:  # fits, or one txn: sorted in memory
                events = bucket.load()
                sort_events(events)
            bucket.remove()
        if sub is not None:
            yield from sorted_bucket_events(sub, run_size, spill)
        else:
            yield from map(_event, events)
            del events
