"""Helpers of the journal's end-to-end and crash tests (issue 13): a quote server whose latency
and price are set per symbol, a blocking line client that keeps pushed events apart from replies,
killing `daytrade up` with every process under it, and reading a DUMPLOG back as events."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.shards.service import shard_of
from tests.support.system import RunningSystem


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def user_of_shard(shard: int, shards: int, prefix: str) -> str:
    """The first user id `prefix0`, `prefix1`, ... that shard `shard` of `shards` owns."""
    for i in range(10_000):
        user = f"{prefix}{i}"
        if shard_of(user, shards) == shard:
            return user
    raise AssertionError(f"no user for shard {shard}")


class PerSymbolQuoteServer:
    """A legacy quote server on 127.0.0.1: `SYM,user\\n` -> `price,SYM,user,ts,key\\n`, answered
    after `latency[SYM]` seconds (default 0) at `prices[SYM]` cents (default 10.00). One thread
    per connection; `close()` ends them all."""

    def __init__(self, prices: dict[str, int] | None = None,
                 latency: dict[str, float] | None = None) -> None:
        self.prices = dict(prices or {})
        self.latency = dict(latency or {})
        self.requests: list[tuple[float, str]] = []  # (monotonic, symbol)
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(10)
                data = b""
                while b"\n" not in data and len(data) < 1024:
                    chunk = conn.recv(256)
                    if not chunk:
                        return
                    data += chunk
                symbol, _, user = data.split(b"\n")[0].decode().strip().partition(",")
                self.requests.append((time.monotonic(), symbol))
                if self._stop.wait(self.latency.get(symbol, 0.0)):
                    return
                cents = self.prices.get(symbol, 1_000)
                conn.sendall(f"{cents // 100}.{cents % 100:02d},{symbol},{user},{now_ms()},"
                             f"k{symbol}\n".encode())
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._accepter.join(5)
        for thread in self._threads:
            thread.join(5)
        self._sock.close()


class Wire:
    """A blocking line client: `ask` returns the next reply; pushed events (lines with "event")
    are kept in `events` as (monotonic time received, event) instead."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self._buf = b""
        self.events: list[tuple[float, dict[str, Any]]] = []

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(f"{line}\n" for line in lines).encode())

    def _line(self, timeout: float) -> dict[str, Any] | None:
        """The next line (events included), or None if none came within `timeout`."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise ConnectionError("closed by the server")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def reply(self, timeout: float | None = None) -> dict[str, Any]:
        """The next reply; AssertionError if none comes within `timeout` (default: the client's)."""
        got = self.poll(self.timeout if timeout is None else timeout)
        if got is None:
            raise AssertionError(f"no reply within {timeout or self.timeout} s")
        return got

    def poll(self, timeout: float) -> dict[str, Any] | None:
        """The next reply if one comes within `timeout`, else None (events are kept)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._line(max(0.0, deadline - time.monotonic()))
            if line is None:
                return None
            if "event" in line:
                self.events.append((time.monotonic(), line))
                continue
            return line

    def ask(self, line: str, timeout: float | None = None) -> dict[str, Any]:
        self.send(line)
        return self.reply(timeout)

    def wait_event(self, name: str, timeout: float) -> tuple[float, dict[str, Any]]:
        """The first pushed event called `name`, waiting up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        while True:
            for seen in self.events:
                if seen[1]["event"] == name:
                    return seen
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {name} event within {timeout} s: {self.events}")
            line = self._line(min(left, 0.2))
            if line is not None:
                assert "event" in line, f"an unexpected reply: {line}"
                self.events.append((time.monotonic(), line))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def operator(system: RunningSystem, timeout: float = 30.0) -> Wire:
    wire = Wire(system.host, system.port, timeout)
    reply = wire.ask(f"AUTH,{system.token}")
    assert reply["ok"], reply
    return wire


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll `check()` until it returns something truthy, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (OSError, ConnectionError, AssertionError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(every)


def shard_stats(system: RunningSystem) -> list[dict[str, Any]]:
    with operator(system, timeout=10) as op:
        reply = op.ask("STATS")
    assert reply["ok"], reply
    return reply["result"]["shards"]


# --- processes ----------------------------------------------------------------------------------


def descendants(pid: int) -> set[int]:
    """Every live process under `pid`, found by walking /proc (no psutil)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def kill_everything(system: RunningSystem) -> list[int]:
    """SIGKILL `daytrade up` and every process under it at once (its process group, and any
    descendant that left the group), reap `daytrade up`; the pids that were killed."""
    process = system.process
    assert process is not None
    victims = sorted({process.pid} | descendants(process.pid))
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(10)
    process.stdout.close()
    system.process = None
    # Orphans are reaped by init; wait (bounded) until none of them is alive.
    wait_until(lambda: not any(alive(p) for p in victims), 10, "killed processes gone")
    return victims


# --- the journal on disk ------------------------------------------------------------------------


def journal_seqs(data_dir: Path, shard: int) -> list[int]:
    """The seqs in shard `shard`'s SQLite journal, read-only (a WAL reader takes no write lock)."""
    path = data_dir / f"shard-{shard}.journal.sqlite"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return [row[0] for row in conn.execute("SELECT seq FROM records ORDER BY seq")]
    finally:
        conn.close()


def snapshot_seq(data_dir: Path, shard: int) -> int:
    path = data_dir / f"shard-{shard}.snapshot.sqlite"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
        return 0 if row is None or row[0] is None else row[0]
    finally:
        conn.close()


def hold_write_lock(db: Path, held: threading.Event, release: threading.Event,
                    max_s: float = 60.0) -> None:
    """Take `db`'s write lock (BEGIN IMMEDIATE) as another process would, set `held`, keep it
    until `release` is set (at most `max_s`), then roll back."""
    conn = sqlite3.connect(str(db), timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(max_s)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


# --- DUMPLOG ------------------------------------------------------------------------------------


def dumplog(system: RunningSystem, wire: Wire, name: str, timeout: float = 120.0) -> Path:
    """DUMPLOG of all users through `wire` (an operator); the file written."""
    reply = wire.ask(f"DUMPLOG,{name}", timeout=timeout)
    assert reply["ok"], reply
    path = Path(reply["result"]["path"])
    assert path.is_file(), path
    return path


def dumped_events(path: Path) -> list[dict[str, str]]:
    """Every event of a DUMPLOG file as {"kind": tag, child tag: text, ...}."""
    events = []
    for element in ET.parse(path).getroot():
        event = {"kind": element.tag}
        event.update({child.tag: (child.text or "") for child in element})
        events.append(event)
    return events


def event_key(event: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(event.items()))
