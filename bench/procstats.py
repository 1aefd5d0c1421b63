"""CPU time, memory, disk writes and threads of the server's processes, through psutil.

psutil gives the figures this module used to parse out of /proc by hand, the same counters:
CPU is utime+stime of each process (all its threads), memory its RSS, disk writes `write_bytes`
of /proc/<pid>/io (bytes sent to the storage layer: the journal, the WAL, DUMPLOG's files; only
the process's own user or root may read them: unreadable, they are None and reported "n/a").

Two figures psutil does not give are still read from /proc (Linux): a process's own peak RSS
(VmHWM in /proc/<pid>/status) and each thread's name (/proc/<pid>/task/<tid>/comm: what the
thread set with prctl(PR_SET_NAME), else the one it inherited). Threads (psutil's CPU per thread
with those names) are read at the marks of a run, not at every memory sample; unreadable, a
process's threads are None and reported "n/a".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psutil

PROC = Path("/proc")
#: What makes a process unreadable for psutil: gone, someone else's, or a zombie.
_UNREADABLE = (psutil.NoSuchProcess, psutil.AccessDenied)


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


def descendants(root: int) -> list[int]:
    """`root` (if alive) and every process below it."""
    try:
        below = psutil.Process(root).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return sorted([root, *(child.pid for child in below)])


def _write_bytes(process: psutil.Process) -> int | None:
    try:
        return process.io_counters().write_bytes
    except _UNREADABLE:
        return None


def write_bytes(pid: int) -> int | None:
    """Bytes the process has written to storage (`write_bytes`), or None when unreadable."""
    try:
        return _write_bytes(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return None


def peak_rss_kb(pid: int, proc: Path = PROC) -> int | None:
    """The process's own peak RSS (VmHWM; psutil does not give it): None when /proc/<pid>/status
    is unreadable (gone), 0 when it has none (a zombie)."""
    status = _read(proc / str(pid) / "status")
    if status is None:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def thread_name(pid: int, tid: int, proc: Path = PROC) -> str | None:
    """The kernel's name of a thread (psutil gives threads' CPU, not their names)."""
    comm = _read(proc / str(pid) / "task" / str(tid) / "comm")
    return comm.removesuffix("\n") if comm else None


def _threads(process: psutil.Process) -> dict[int, ThreadSample] | None:
    try:
        found = process.threads()
    except _UNREADABLE:
        return None
    named = {}
    for thread in found:
        name = thread_name(process.pid, thread.id)
        if name is not None:  # None: it ended while being read
            named[thread.id] = ThreadSample(thread.id, name,
                                            thread.user_time + thread.system_time)
    return named or None


def threads(pid: int) -> dict[int, ThreadSample] | None:
    """Every thread of the process now, by tid; None when its threads are unreadable (a thread
    that ends while being read is left out)."""
    try:
        return _threads(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return None


def sample(pid: int, name: str | None = None, *, with_threads: bool = False
           ) -> ProcSample | None:
    """The process's CPU seconds, memory and disk writes now (and its threads when asked), or
    None if it is gone."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            cpu = process.cpu_times()
            rss_kb = process.memory_info().rss // 1024
            written = _write_bytes(process)
            found = _threads(process) if with_threads else None
    except _UNREADABLE:
        return None
    hwm_kb = peak_rss_kb(pid)
    if hwm_kb is None:
        return None
    return ProcSample(pid, name if name is not None else describe(pid), cpu.user + cpu.system,
                      rss_kb, hwm_kb, written, found)


def role_of(command_line: list[str]) -> str:
    """A short name for a server process, from its command line."""
    text = " ".join(command_line)
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
    return Path(command_line[0]).name if command_line else "?"


def describe(pid: int) -> str:
    """A short name for a server process, from its command line ("?" when unreadable)."""
    try:
        return role_of(psutil.Process(pid).cmdline())
    except _UNREADABLE:
        return "?"


def listener_pid(port: int) -> int | None:
    """The pid of the local process listening on TCP `port` (None if not found or not ours)."""
    for connection in psutil.net_connections("tcp"):
        if (connection.status == psutil.CONN_LISTEN and connection.laddr
                and connection.laddr.port == port and connection.pid is not None):
            return connection.pid
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


class MachineCpuTimes(Protocol):
    """The fields of psutil.cpu_times() on Linux that busy_and_idle reads."""

    user: float
    nice: float
    system: float
    idle: float
    iowait: float
    irq: float
    softirq: float
    steal: float


def busy_and_idle(times: MachineCpuTimes) -> tuple[float, float]:
    """(busy, idle) seconds of psutil.cpu_times(): waiting for I/O counts as idle, as `top` has
    it; guest time is already inside user time."""
    busy = times.user + times.nice + times.system + times.irq + times.softirq + times.steal
    return busy, times.idle + times.iowait


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, all cores summed."""
    return busy_and_idle(psutil.cpu_times())


def load_average() -> float:
    """The 1-minute load average."""
    return psutil.getloadavg()[0]


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
