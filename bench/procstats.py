"""CPU time and memory of the server's processes, read from /proc (Linux only, no psutil).

A `ProcessTree` is a root pid and all its descendants, found again now and then (a shard may be
restarted). CPU is utime+stime of each process (all its threads); memory is VmRSS now and VmHWM,
the process's own peak; disk writes are `write_bytes` of /proc/<pid>/io (bytes the process sent to
the storage layer: the journal, the WAL, DUMPLOG's files), which only the process's own user (or
root) may read: unreadable, it is None and reported "n/a".

Threads: at the marks of a run (not at every memory sample) each process's threads are read from
/proc/<pid>/task/<tid>/stat: the thread's name (its `comm`, the same as .../comm; what the thread
set with prctl(PR_SET_NAME), else the one it inherited) and its utime+stime. Unreadable, a
process's threads are None and reported "n/a".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class ThreadSample:
    """One thread of a process at one moment."""

    tid: int
    #: the kernel's name of the thread (15 bytes at most)
    name: str
    cpu_s: float


@dataclass
class ProcSample:
    """One process at one moment."""

    pid: int
    name: str
    cpu_s: float
    rss_kb: int
    hwm_kb: int
    #: bytes written to storage since the process started (None: /proc/<pid>/io unreadable)
    write_bytes: int | None = None
    #: tid -> the thread now (None: not read at this sample, or /proc/<pid>/task unreadable)
    threads: dict[int, ThreadSample] | None = None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def parent_of(pid: int, proc: Path = PROC) -> int | None:
    """The parent pid, or None if the process is gone."""
    stat = _read(proc / str(pid) / "stat")
    if stat is None:
        return None
    return int(stat[stat.rfind(")") + 2:].split()[1])


def descendants(root: int, proc: Path = PROC) -> list[int]:
    """`root` (if alive) and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        ppid = parent_of(int(entry.name), proc)
        if ppid is not None:
            children.setdefault(ppid, []).append(int(entry.name))
    if not (proc / str(root)).exists():
        return []
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return sorted(found)


def io_counters(pid: int, proc: Path = PROC) -> dict[str, int] | None:
    """The process's /proc/<pid>/io counters (`write_bytes`, ...), or None when unreadable
    (gone, another user's process, no such file) or malformed."""
    text = _read(proc / str(pid) / "io")
    if not text:
        return None
    counters = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if not sep:
            continue
        try:
            counters[name.strip()] = int(value)
        except ValueError:
            return None
    return counters


def write_bytes(pid: int, proc: Path = PROC) -> int | None:
    """Bytes the process has written to storage (`write_bytes`), or None when unreadable."""
    counters = io_counters(pid, proc)
    return counters.get("write_bytes") if counters is not None else None


def _parse_stat(stat: str) -> tuple[str, float]:
    """(name, utime+stime seconds) from a /proc stat line; ValueError/IndexError if malformed."""
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    return name, (int(fields[11]) + int(fields[12])) / _TICK


def threads(pid: int, proc: Path = PROC) -> dict[int, ThreadSample] | None:
    """Every thread of the process now, by tid; None when /proc/<pid>/task is unreadable (a
    thread that ends while being read, or whose stat is unreadable, is left out)."""
    task = proc / str(pid) / "task"
    try:
        tids = sorted(int(entry.name) for entry in task.iterdir() if entry.name.isdigit())
    except OSError:
        return None
    found = {}
    for tid in tids:
        stat = _read(task / str(tid) / "stat")
        if stat is None:
            continue
        try:
            name, cpu = _parse_stat(stat)
        except (ValueError, IndexError):
            continue
        found[tid] = ThreadSample(tid, name, cpu)
    return found if found else None


def sample(pid: int, name: str | None = None, proc: Path = PROC, *,
           with_threads: bool = False) -> ProcSample | None:
    """The process's CPU seconds, memory and disk writes now (and its threads when asked), or
    None if it is gone."""
    stat = _read(proc / str(pid) / "stat")
    status = _read(proc / str(pid) / "status")
    if stat is None or status is None:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICK
    rss = hwm = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return ProcSample(pid, name if name is not None else describe(pid, proc), cpu, rss, hwm,
                      write_bytes(pid, proc), threads(pid, proc) if with_threads else None)


def describe(pid: int, proc: Path = PROC) -> str:
    """A short name for a server process, from its command line."""
    raw = _read(proc / str(pid) / "cmdline") or ""
    args = [a for a in raw.split("\0") if a]
    text = " ".join(args)
    if "redis-server" in text:
        return "redis"
    if "daytrade" in text and " quotes" in text:
        return "quotes"
    if "daytrade" in text and " up" in text:
        return "gateway"
    if "resource_tracker" in text:
        return "resource_tracker"
    if "multiprocessing" in text:
        return "worker"
    if "bench.calibrate" in text:
        return "calibration"
    return Path(args[0]).name if args else "?"


def listener_pid(port: int, proc: Path = PROC) -> int | None:
    """The pid of the local process listening on TCP `port` (None if not found or not ours)."""
    inodes = set()
    for table in ("net/tcp", "net/tcp6"):
        text = _read(proc / table) or ""
        for line in text.splitlines()[1:]:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                try:
                    if os.readlink(fd) in wanted:
                        return int(entry.name)
                except OSError:
                    continue
        except OSError:
            continue
    return None


@dataclass
class ProcessTree:
    """The server's processes: CPU at two marks, peak of the summed RSS in between."""

    root: int
    #: pid -> role (set shard-0, shard-1... from STATS; the rest named from the command line)
    roles: dict[int, str] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)
    peak_rss_kb: int = 0
    last: dict[int, ProcSample] = field(default_factory=dict)

    def rescan(self) -> None:
        self.pids = descendants(self.root)

    def poll(self, *, with_threads: bool = False) -> dict[int, ProcSample]:
        """Sample every known process (and its threads when asked: the run's marks); keeps the
        peak of their summed RSS."""
        if not self.pids:
            self.rescan()
        samples = {}
        for pid in self.pids:
            name = self.roles.get(pid)
            if name is None:
                name = self.roles[pid] = describe(pid)
            s = sample(pid, name, with_threads=with_threads)
            if s is not None:
                samples[pid] = s
        self.peak_rss_kb = max(self.peak_rss_kb, sum(s.rss_kb for s in samples.values()))
        self.last.update(samples)
        return samples


def machine_cpu(proc: Path = PROC) -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, all cores summed (/proc/stat)."""
    text = _read(proc / "stat") or ""
    for line in text.splitlines():
        if line.startswith("cpu "):
            ticks = [int(x) for x in line.split()[1:]]
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
            return (sum(ticks[:8]) - idle) / _TICK, idle / _TICK
    return 0.0, 0.0


def load_average(proc: Path = PROC) -> float | None:
    """The 1-minute load average."""
    text = _read(proc / "loadavg")
    return float(text.split()[0]) if text else None


def writes_between(before: dict[int, ProcSample], after: dict[int, ProcSample]
                   ) -> dict[int, int | None]:
    """Bytes each process wrote between two polls (a process new in `after` counts whole; None
    where a reading is missing)."""
    written: dict[int, int | None] = {}
    for pid, s in after.items():
        start = before.get(pid)
        if s.write_bytes is None or (start is not None and start.write_bytes is None):
            written[pid] = None
        else:
            written[pid] = s.write_bytes - (start.write_bytes if start is not None else 0)
    return written


def cpu_between(before: dict[int, ProcSample], after: dict[int, ProcSample]) -> dict[int, float]:
    """CPU seconds each process used between two polls (a process new in `after` counts whole)."""
    used = {}
    for pid, s in after.items():
        start = before.get(pid)
        used[pid] = s.cpu_s - (start.cpu_s if start is not None else 0.0)
    return used


#: The label of a process's first thread (tid == pid: the reactor thread of a Twisted process).
MAIN_THREAD = "main"
#: The label of the threads that kept the name they inherited from the main thread (no name of
#: their own: e.g. Twisted's thread pool, which writes DUMPLOG files).
UNNAMED_THREADS = "unnamed"


def thread_labels(pid: int, found: dict[int, ThreadSample]) -> dict[int, str]:
    """Each thread's label: `main`, its own name, or `unnamed` when it has its main thread's."""
    main = found.get(pid)
    labels = {}
    for tid, thread in found.items():
        if tid == pid:
            labels[tid] = MAIN_THREAD
        elif main is not None and thread.name == main.name:
            labels[tid] = UNNAMED_THREADS
        else:
            labels[tid] = thread.name
    return labels


def thread_cpu_between(before: ProcSample | None, after: ProcSample
                       ) -> dict[str, tuple[int, float]] | None:
    """CPU seconds each thread label of a process used between two polls, with the number of
    threads under the label: {label: (threads, cpu_s)}. A thread new in `after` (or renamed)
    counts whole; a thread that ended in between is not seen (its CPU stays in the process's).
    None when the threads were not read at either poll."""
    if after.threads is None or (before is not None and before.threads is None):
        return None
    prior = before.threads if before is not None and before.threads is not None else {}
    used: dict[str, tuple[int, float]] = {}
    for tid, label in thread_labels(after.pid, after.threads).items():
        thread = after.threads[tid]
        start = prior.get(tid)
        cpu = thread.cpu_s - (start.cpu_s if start is not None and start.name == thread.name
                              else 0.0)
        count, total = used.get(label, (0, 0.0))
        used[label] = (count + 1, total + cpu)
    return used
