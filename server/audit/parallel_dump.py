"""The all-users DUMPLOG on every core: the distribution sort of merge.py split over processes.

Why: one process spends ~18 s on final_2019's 2.4M events (decode ~2.3 s, deal into buckets
~3.5 s, load + sort ~3.5 s, XML ~5.5 s), all on one core while the others idle; every step but
the final concatenation is independent per shard or per txn range.

How, given the shards' journals (opened by the caller, in shard order):

1. The txn range is agreed first: 0 .. the highest `max_txn()` of every journal (O(1) each).
   One worker per journal decodes its records and deals its events into BUCKETS part files
   over that range (merge.deal: events keep their order of arrival; a txn committed after the
   range was read goes to the last bucket, as merge.py does). The calling thread reads each
   journal in a feeder thread and pipes the raw records (compressed, ~20 KB each: 0.05 s to
   read a final_2019 journal) to its worker: the worker needs no way to open a journal, so
   any store works (SQLite, MongoDB, the fault injector, a test's lambda).
2. A pool of workers (as many as cores, at most MAX_WORKERS; phase 1's processes are reused)
   takes whole buckets: bucket k is its shards' parts read in shard order, which is the order
   the single-process path meets those events in, so after Python's stable sort ties come out
   exactly as there. Each sorted bucket is rendered by xml_writer.write_log to a fragment
   file; a bucket above `run_size` events is dealt again over its own range a chunk at a time
   (merge.sorted_bucket_events), so a worker holds about one bucket at most.
3. The parent writes xml_writer.HEADER, each fragment without its own header and footer, in
   bucket order as they complete (copy_file_range: no bytes through Python), and FOOTER to a
   temporary file in the dump directory, fsyncs it and renames it over the target, as
   dumpfile.dump_events does. The bytes are those of `write_log(merged_events(...))`.

Workers are fresh interpreters started with subprocess (never fork: the shard process has
threads), not multiprocessing.Process: the shard process is itself a daemonic multiprocessing
child, and those may not start children. They talk over two pipes with
multiprocessing.connection's framing. A worker that dies (a signal, the OOM killer) ends the
dump with DumpWorkerError naming it, its exit status and its last stderr; an exception in a
worker is raised again in the caller with the worker's traceback as a note (a corrupt record
stays a ValueError). Every worker is stopped and the temporary directory (part files,
fragments, stderr files, inside the dump directory) is removed however the dump ends; workers
also exit on their own when the parent's end of the pipe closes.

A log below MIN_PARALLEL_TXNS txns is dumped in the calling thread as before: starting workers
costs ~0.1 s each. Per-user dumps never come here (they are small).

Figures: a real final_2019 run's journals (2 shards, 2,398,447 events, 650 MB of XML), the
whole dump to a file with its fsync, on this 2-core machine while it was otherwise idle; before
(b50a435, one process) and after alternated back to back, CPU = parent + workers:
  before 27.8 s wall, 27.2 s CPU   after 11.6 s wall, 22.0 s CPU (phase 1 2.4 s, phase 2 9.2 s)
  before 24.2 s wall, 23.8 s CPU   after 12.0 s wall, 22.1 s CPU (phase 1 2.6 s, phase 2 9.3 s)
  the single-process path with merge.py's 32-event chunks (what small and per-user dumps run):
  20.5 s wall, 20.2 s CPU; after, next to it: 11.0 s wall, 20.5 s CPU.
Peak RSS: 212 MB in one process before; 52 MB in the parent and 47 MB per worker after. Phase 2
is most of it: per event, loading ~1.2 us, sorting ~0.8 us and rendering ~3 us (xml_writer),
now on both cores; the parent's copy of the fragments (~0.5 s of kernel time) overlaps it.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator, Sequence
from itertools import chain
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from server.audit import merge
from server.audit.dumpfile import (
    TEMP_PREFIX,
    DumpResult,
    ReplacingFile,
    dump_events,
    safe_dump_path,
)
from server.audit.xml_writer import FOOTER, HEADER, write_log
from server.store import codec
from server.store.journal_port import ShardJournal

#: Below this highest txn an all-users dump stays in the calling thread (~2 events a txn).
MIN_PARALLEL_TXNS = 50_000
#: The render pool's size is the number of usable cores, at most this.
MAX_WORKERS = 4
#: Txn ranges phase 1 deals into: ~37K events each on final_2019, so the pool shares the work
#: evenly and a worker holds little (merge.py's bound, `run_size`, still applies to each).
BUCKETS = 64
#: Raw records piped to a phase-1 worker in one message, in bytes (records are ~20 KB).
FEED_BYTES = 1 << 20
#: How long a worker whose input was closed may take to exit before it is killed.
EXIT_TIMEOUT = 5.0

log = logging.getLogger("daytrade.dumplog")

_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the `server` package
_BOOT = "from server.audit.parallel_dump import _worker_main; _worker_main()"


class DumpWorkerError(RuntimeError):
    """A DUMPLOG worker process died, or broke the protocol."""


def dump_all_users(journals: Sequence[ShardJournal], dump_dir: Path, requested: str, *,
                   workers: int | None = None, run_size: int = 200_000,
                   min_txns: int = MIN_PARALLEL_TXNS) -> DumpResult:
    """Every event of every journal (shard order) in the log's order, as the XML file
    `requested` in `dump_dir` (atomically replaced): in worker processes when the log has at
    least `min_txns` txns, else in this thread. `workers`: the render pool's size (default:
    the usable cores, at most MAX_WORKERS)."""
    if run_size < 1:
        raise ValueError(f"run_size must be at least 1, not {run_size}")
    high = max((j.max_txn() for j in journals), default=0)
    if high < min_txns or not journals:
        streams = [(codec.decode_event_rows(data) for _, data in j.records()) for j in journals]
        return dump_events(merge.merged_events(streams, run_size=run_size), dump_dir, requested)
    if workers is None:
        workers = min(MAX_WORKERS, len(os.sched_getaffinity(0)) if hasattr(
            os, "sched_getaffinity") else os.cpu_count() or 1)
    return _ParallelDump(journals, Path(dump_dir), requested, high, max(1, workers),
                         run_size).run()


# --- the parent's side ---------------------------------------------------------------------


class _ParallelDump:
    def __init__(self, journals: Sequence[ShardJournal], dump_dir: Path, requested: str,
                 high: int, workers: int, run_size: int) -> None:
        self.journals = journals
        self.dump_dir = dump_dir
        self.requested = requested
        self.high = high
        self.workers = workers
        self.run_size = run_size
        self.pool: list[_Worker] = []

    def run(self) -> DumpResult:
        self.dump_dir.mkdir(parents=True, exist_ok=True)
        target = safe_dump_path(self.dump_dir, self.requested)
        # In the dump directory: the fragments are on the target's file system, where
        # copy_file_range may share their blocks rather than copy them.
        self.work = Path(tempfile.mkdtemp(dir=self.dump_dir, prefix=TEMP_PREFIX,
                                          suffix=".work"))
        ok = False
        try:
            started = time.perf_counter()
            for shard in range(len(self.journals)):
                self.pool.append(_Worker(f"shard-{shard}", self.work))
            parts = self._deal()
            dealt = time.perf_counter()
            while len(self.pool) < self.workers:
                self.pool.append(_Worker(f"render-{len(self.pool)}", self.work))
            for worker in self.pool[self.workers:]:
                worker.close()
            del self.pool[self.workers:]
            result = self._render(parts, target)
            ok = True
            log.info("DUMPLOG %s: %d events; dealt by %d workers in %.2f s, sorted and "
                     "rendered by %d in %.2f s", target.name, result.events,
                     len(self.journals), dealt - started, len(self.pool),
                     time.perf_counter() - dealt)
            return result
        finally:
            for worker in self.pool:
                worker.close(kill=not ok)
            shutil.rmtree(self.work, ignore_errors=True)

    def _deal(self) -> list[merge.Bucket]:
        """Phase 1: each journal's events dealt by its worker; bucket k's parts in shard order."""
        paths = [[self.work / f"b{k:03d}.s{shard}" for k in range(BUCKETS)]
                 for shard in range(len(self.journals))]
        for worker, mine in zip(self.pool, paths):
            worker.send(("deal", 0, self.high, [str(p) for p in mine]))
        errors: list[BaseException] = []
        feeders = [threading.Thread(target=self._feed, args=(journal, worker, errors),
                                    name=f"dumplog-feed-{worker.name}", daemon=True)
                   for journal, worker in zip(self.journals, self.pool)]
        for feeder in feeders:
            feeder.start()
        for feeder in feeders:
            feeder.join()
        if errors:
            raise errors[0]
        counts = [worker.recv() for worker in self.pool]
        return [merge.Bucket(*(mine[k] for mine in paths),
                             count=sum(c[k] for c in counts)) for k in range(BUCKETS)]

    @staticmethod
    def _feed(journal: ShardJournal, worker: _Worker, errors: list[BaseException]) -> None:
        try:
            batch: list[bytes] = []
            size = 0
            for _, data in journal.records():
                batch.append(data)
                size += len(data)
                if size >= FEED_BYTES:
                    worker.send(batch)
                    batch, size = [], 0
            if batch:
                worker.send(batch)
            worker.send(None)
        except BaseException as error:  # raised again by the calling thread
            errors.append(error)

    def _render(self, buckets: list[merge.Bucket], target: Path) -> DumpResult:
        """Phase 2: buckets rendered by the pool, appended to the dump in bucket order."""
        order = [k for k, bucket in enumerate(buckets) if bucket.count]
        waiting = deque(order)
        busy: dict[Any, tuple[_Worker, int]] = {}
        rendered: dict[int, int] = {}
        def assign(worker: _Worker) -> None:
            if waiting:
                k = waiting.popleft()
                bucket = buckets[k]
                worker.send(("render", [str(p) for p in bucket.paths], bucket.count,
                             str(self._fragment(k)), self.run_size, str(self.work)))
                busy[worker.rx] = (worker, k)

        count = 0
        replacement = ReplacingFile(target, buffering=0)
        with replacement as out:
            out.write(HEADER)
            written = 0
            for worker in self.pool:
                assign(worker)
            while busy:
                for rx in wait(list(busy)):
                    worker, k = busy.pop(rx)
                    rendered[k] = worker.recv()
                    assign(worker)
                # Append what is ready in order while the pool renders the rest.
                while written < len(order) and order[written] in rendered:
                    k = order[written]
                    _append_body(self._fragment(k), out.fileno())
                    self._fragment(k).unlink()
                    count += rendered[k]
                    written += 1
            out.write(FOOTER)
        return DumpResult(target, count, replacement.replaced)

    def _fragment(self, k: int) -> Path:
        return self.work / f"f{k:03d}.xml"


def _append_body(fragment: Path, out_fd: int) -> None:
    """Append `fragment` (a whole write_log document) to `out_fd` without its header and
    footer."""
    with open(fragment, "rb") as f:
        end = os.fstat(f.fileno()).st_size - len(FOOTER)
        if (end < len(HEADER) or os.pread(f.fileno(), len(HEADER), 0) != HEADER
                or os.pread(f.fileno(), len(FOOTER), end) != FOOTER):
            raise DumpWorkerError(f"DUMPLOG fragment {fragment.name} is not a whole log")
        offset = len(HEADER)
        copy = getattr(os, "copy_file_range", None)
        while offset < end:
            try:
                if copy is None:
                    raise OSError(errno.ENOSYS, "no copy_file_range")
                n = copy(f.fileno(), out_fd, end - offset, offset)
            except OSError as error:
                if error.errno not in (errno.ENOSYS, errno.EXDEV, errno.EINVAL,
                                       errno.EOPNOTSUPP, errno.EPERM):
                    raise
                copy = None  # not between these files: through memory instead
                data = os.pread(f.fileno(), min(end - offset, 1 << 20), offset)
                n = os.write(out_fd, data)
            if n <= 0:
                raise DumpWorkerError(f"DUMPLOG fragment {fragment.name} ended early")
            offset += n


class _Worker:
    """A worker process and the two pipes to it; every message is a pickled tuple."""

    def __init__(self, name: str, work: Path) -> None:
        self.name = name
        self.stderr_path = work / f"{name}.stderr"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
        child_in, parent_out = os.pipe()
        parent_in, child_out = os.pipe()
        try:
            with open(self.stderr_path, "wb") as stderr:
                self.process = subprocess.Popen(
                    [sys.executable, "-c", _BOOT], stdin=child_in, stdout=child_out,
                    stderr=stderr, env=env, close_fds=True)
        except BaseException:
            os.close(parent_out)
            os.close(parent_in)
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        self.tx = Connection(parent_out, readable=False)
        self.rx = Connection(parent_in, writable=False)

    def send(self, message: Any) -> None:
        try:
            self.tx.send(message)
        except OSError:  # it is gone: say why, from its reply if it sent one
            self._raise_failure()

    def recv(self) -> Any:
        try:
            status, value, *details = self.rx.recv()
        except (EOFError, OSError):
            self._raise_died()
        if status == "error":
            value.add_note(f"in DUMPLOG worker {self.name}:\n{details[0]}")
            raise value
        return value

    def _raise_failure(self) -> None:
        try:
            if self.rx.poll(EXIT_TIMEOUT):
                self.recv()
        except (EOFError, OSError):
            pass
        self._raise_died()

    def _raise_died(self) -> None:
        try:
            code = self.process.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        try:
            tail = self.stderr_path.read_bytes()[-2000:].decode("utf-8", "replace").strip()
        except OSError:
            tail = ""
        raise DumpWorkerError(f"DUMPLOG worker {self.name} (pid {self.process.pid}) died "
                              f"({how})" + (f": {tail}" if tail else ""))

    def close(self, kill: bool = False) -> None:
        """Close its input, so it exits; kill it if asked to, or if it lingers."""
        if kill and self.process.poll() is None:
            self.process.kill()
        self.tx.close()
        self.rx.close()
        try:
            self.process.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the worker's side ---------------------------------------------------------------------


def _worker_main() -> None:
    """A worker's loop: one task at a time from stdin, its reply to stdout, until EOF."""
    inbox = Connection(os.dup(0), writable=False)
    outbox = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # a stray print goes to stderr, never into the replies
    while True:
        try:
            task = inbox.recv()
        except EOFError:
            return
        try:
            if task[0] == "deal":
                result: Any = _deal_records(inbox, *task[1:])
            elif task[0] == "render":
                result = _render_bucket(*task[1:])
            else:
                raise ValueError(f"unknown task {task[0]!r}")
        except BaseException as error:
            outbox.send(("error", _portable(error), traceback.format_exc()))
            return
        outbox.send(("ok", result))


def _portable(error: BaseException) -> BaseException:
    """`error` if it survives pickling (a ValueError stays one for the reply's code)."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def _deal_records(inbox: Connection, low: int, high: int, paths: list[str]) -> list[int]:
    """Deal the events of the raw records sent in lists until None; the count per bucket."""
    batches: Iterator[list[bytes]] = iter(inbox.recv, None)
    events = chain.from_iterable(map(codec.decode_event_rows, chain.from_iterable(batches)))
    buckets = [merge.Bucket(Path(p)) for p in paths]
    with merge.collector_paused():
        merge.deal(events, low, high, buckets)
    return [bucket.count for bucket in buckets]


def _render_bucket(paths: list[str], count: int, fragment: str, run_size: int,
                   spill_parent: str) -> int:
    """Sort one bucket (its parts in order) and write it as a whole log to `fragment`."""
    bucket = merge.Bucket(*map(Path, paths), count=count)
    spill = merge.SpillDir(spill_parent)
    try:
        with open(fragment, "wb", buffering=1 << 20) as out:
            return write_log(merge.sorted_bucket_events([bucket], run_size, spill), out)
    finally:
        spill.remove()
