"""Battery item 3, clients that misbehave: vanish mid-command, never read, idle by the thousand,
flood. The server stays correct and bounded, and the other users do not notice."""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.reliability.figures import p99, record
from tests.reliability.sizes import Size
from tests.support.lines import LineClient
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def system(tmp_path):
    with RunningSystem(tmp_path / "data", prices={"ABC": 1000}) as s:
        yield s


def operator(system: RunningSystem, timeout: float = 20.0) -> LineClient:
    conn = LineClient(system.host, system.port, timeout=timeout)
    assert conn.ask(f"AUTH,{system.token}")["ok"]
    return conn


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def timed_ask(conn: LineClient, line: str) -> float:
    """One round trip of `line`, whose reply must be ok."""
    started = time.monotonic()
    reply = conn.ask(line)
    assert reply["ok"], reply
    return time.monotonic() - started


def timed_asks(conn: LineClient, line: str, seconds: float, pause: float = 0.0) -> list[float]:
    """Round trips of `line` for `seconds` (at least one); every reply must be ok."""
    latencies = [timed_ask(conn, line)]
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if pause:
            time.sleep(pause)
        latencies.append(timed_ask(conn, line))
    return latencies


def user_commands(xml: str) -> dict[int, int]:
    """txn -> number of userCommand events in a DUMPLOG."""
    counts: dict[int, int] = {}
    for block in re.findall(r"<userCommand>(.*?)</userCommand>", xml, re.S):
        txn = int(re.search(r"<transactionNum>(\d+)</transactionNum>", block).group(1))
        counts[txn] = counts.get(txn, 0) + 1
    return counts


def test_a_client_vanishing_mid_command_applies_it_once_or_not_at_all(system, size: Size):
    rng = random.Random(f"disconnect-{size.name}")
    users = [f"gone{i}" for i in range(5)]
    expected = dict.fromkeys(users, 0)
    txns: dict[str, list[int]] = {u: [] for u in users}
    outcomes = {"cut mid-line": 0, "applied, reply lost": 0, "replayed on retry": 0}
    for i in range(size.disconnects):
        user, cents, txn = users[i % len(users)], rng.randrange(1, 100_000), 1_000 + i
        line = f"[{txn}] ADD,{user},{cents // 100}.{cents % 100:02d}\n".encode()
        with socket.create_connection((system.host, system.port), timeout=10) as raw:
            raw.sendall(f"AUTH,{system.token}\n".encode())
            raw.recv(4096)
            whole = rng.random() < 0.5
            raw.sendall(line if whole else line[:rng.randrange(1, len(line) - 1)])
            if rng.random() < 0.5:  # an abrupt reset rather than a FIN
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        outcomes["applied, reply lost" if whole else "cut mid-line"] += 1
        with operator(system) as conn:  # the client comes back and retries with the same txn
            reply = conn.ask(line)
        assert reply["ok"], reply
        outcomes["replayed on retry"] += bool(reply.get("replayed"))
        expected[user] += cents
        txns[user].append(txn)
    doubled = lost = 0
    with operator(system) as conn:
        for user in users:
            summary = conn.ask(f"DISPLAY_SUMMARY,{user}")["result"]
            cash = round(float(summary["cash"]) * 100)
            doubled += cash > expected[user]
            lost += cash < expected[user]
            assert summary["transactions_total"] == len(txns[user]), user
            audited = user_commands(conn.ask(f"DUMPLOG,{user},-")["result"]["xml"])
            assert all(audited.get(t) == 1 for t in txns[user]), (user, audited)
    record("clients/disconnect", f"{size.disconnects} clients vanished mid-command "
           f"({outcomes['cut mid-line']} mid-line, {outcomes['applied, reply lost']} after the "
           f"line; {outcomes['replayed on retry']} retries answered replayed): {lost} lost, "
           f"{doubled} doubled, every command audited exactly once", lost=lost, doubled=doubled)
    assert lost == 0 and doubled == 0


def test_a_client_that_never_reads_stays_bounded_and_others_unaffected(system, size: Size):
    pid = system.process.pid
    with operator(system) as setup:
        setup.ask("ADD,hog,1000.00")
        for _ in range(20):  # twenty transactions make every DISPLAY_SUMMARY reply ~3 KB
            setup.ask("ADD,hog,0.01")
    with operator(system) as other:
        other.ask("ADD,bystander,10.00")
        baseline = timed_asks(other, "DISPLAY_SUMMARY,bystander", 1.0)
        rss_before = rss_kib(pid)
        hog = socket.create_connection((system.host, system.port))
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.sendall(f"AUTH,{system.token}\n".encode())
        hog.setblocking(False)
        sent = 0
        peak = rss_before
        stop = threading.Event()

        def flood() -> None:
            nonlocal sent
            chunk = b"DISPLAY_SUMMARY,hog\n" * 500
            while not stop.is_set():
                try:
                    sent += hog.send(chunk)
                except BlockingIOError:
                    time.sleep(0.01)  # the server stopped reading us: TCP back-pressure

        flooder = threading.Thread(target=flood)
        flooder.start()
        try:
            during: list[float] = []
            until = time.monotonic() + size.flood_s
            while time.monotonic() < until:
                during += timed_asks(other, "DISPLAY_SUMMARY,bystander", 0.2)
                peak = max(peak, rss_kib(pid))
        finally:
            stop.set()
            flooder.join()
            hog.close()
    growth_mib = (peak - rss_before) / 1024
    record("clients/never reads", f"a client sent {sent / 2**20:.1f} MiB of requests and read "
           f"no reply for {size.flood_s:g} s: daytrade up RSS {rss_before / 1024:.0f} -> peak "
           f"{peak / 1024:.0f} MiB (+{growth_mib:.1f}); bystander p99 "
           f"{p99(during) * 1000:.1f} ms (baseline {p99(baseline) * 1000:.1f} ms)",
           growth_mib=growth_mib, p99_ms=p99(during) * 1000, baseline_ms=p99(baseline) * 1000)
    assert growth_mib < 200  # bounded: the server stopped reading, it did not buffer it all
    assert sent < 200 * 2**20


def stats_gateway(system: RunningSystem) -> dict:
    with operator(system) as conn:
        return conn.ask("STATS")["result"]["gateway"]


def test_many_idle_connections_are_accepted_then_reaped(tmp_path, size: Size):
    idle_timeout = 3.0 if size.idle_connections <= 1_000 else 45.0
    with RunningSystem(tmp_path / "data", extra_args=["--idle-timeout", str(idle_timeout)]) as s, \
            operator(s) as active:
        active.ask("ADD,busy_bee,10.00")
        baseline = timed_asks(active, "DISPLAY_SUMMARY,busy_bee", 1.0)
        idle = subprocess.Popen([sys.executable, "-m", "tests.reliability.idle_clients", s.host,
                                 str(s.port), str(size.idle_connections)], cwd=REPO,
                                stdout=subprocess.PIPE, text=True)
        try:
            opened = json.loads(idle.stdout.readline())
            open_now = stats_gateway(s)["open"]
            during = timed_asks(active, "DISPLAY_SUMMARY,busy_bee", min(2.0, idle_timeout / 2))
            closed = json.loads(idle.stdout.readline())
            idle.wait(30)
        finally:
            if idle.poll() is None:
                idle.kill()
                idle.wait()
        still_open = stats_gateway(s)["open"]
        after = timed_asks(active, "DISPLAY_SUMMARY,busy_bee", 0.5)
    record("clients/idle", f"{opened['opened']} of {size.idle_connections} idle connections "
           f"accepted in {opened['seconds']:.1f} s ({open_now} open at the gateway); "
           f"{closed['closed']} reaped by --idle-timeout {idle_timeout:g} s, the last "
           f"{closed['seconds']:.1f} s after the last was answered; active user p99 "
           f"{p99(during) * 1000:.1f} ms beside them (baseline {p99(baseline) * 1000:.1f} ms, "
           f"after {p99(after) * 1000:.1f} ms)",
           opened=opened["opened"], reaped=closed["closed"], p99_ms=p99(during) * 1000,
           baseline_ms=p99(baseline) * 1000)
    assert opened["opened"] == size.idle_connections
    assert open_now >= size.idle_connections
    assert closed["closed"] == size.idle_connections
    assert still_open <= 2  # the active operator and the STATS connection itself


def test_a_flood_over_the_rate_limit_gets_busy_and_others_do_not(tmp_path, size: Size):
    rate = 100.0
    with RunningSystem(tmp_path / "data", extra_args=["--rate-limit", str(rate)]) as s, \
            operator(s) as other:
        other.ask("ADD,calm,10.00")
        baseline = timed_asks(other, "DISPLAY_SUMMARY,calm", 1.0, pause=0.02)
        flooder = operator(s)
        flooder.ask("ADD,flood,10.00")
        codes: dict[str, int] = {}
        sent = 0
        stop = threading.Event()

        def read_replies() -> None:
            while True:
                try:
                    reply = flooder.reply()
                except (OSError, ConnectionError):
                    return
                code = "ok" if reply["ok"] else reply["error"]["code"]
                codes[code] = codes.get(code, 0) + 1
                if stop.is_set() and sum(codes.values()) >= sent:
                    return

        reader = threading.Thread(target=read_replies)
        reader.start()
        during: list[float] = []
        started = time.monotonic()
        try:
            while time.monotonic() - started < size.flood_s:
                due = int((time.monotonic() - started) * 10 * rate) - sent  # ten times the rate
                if due > 0:
                    flooder.sock.sendall(b"DISPLAY_SUMMARY,flood\n" * due)
                    sent += due
                if len(during) < (time.monotonic() - started) * 20:  # the calm user: 20/s
                    during.append(timed_ask(other, "DISPLAY_SUMMARY,calm"))
                time.sleep(0.005)
        finally:
            stop.set()
            reader.join(30)
            flooder.close()
        elapsed = time.monotonic() - started
    record("clients/flood", f"a client at {sent / elapsed:.0f} commands/s against "
           f"--rate-limit {rate:g}: {codes.get('busy', 0)} busy, {codes.get('ok', 0)} ok (burst "
           f"1000 + {rate:g}/s); the calm user on another connection: 0 busy, p99 "
           f"{p99(during) * 1000:.1f} ms (baseline {p99(baseline) * 1000:.1f} ms)",
           busy=codes.get("busy", 0), ok=codes.get("ok", 0), p99_ms=p99(during) * 1000)
    assert sum(codes.values()) == sent
    assert codes.get("busy", 0) > 0
    assert set(codes) <= {"ok", "busy"}
    # the rate bounds what got through: the burst plus the rate over the run, with slack
    assert codes.get("ok", 0) <= 1_000 + rate * (elapsed + 1)
