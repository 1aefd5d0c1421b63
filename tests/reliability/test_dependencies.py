"""Battery item 2, dependencies failing under load: Redis, the quote server, the store.

Closed-loop users keep trading while a dependency is paused, flushed, stopped, slow, silent,
garbled or failing. Every attempt must get a reply within its timeout (success or
`quote_unavailable`, `busy`, `internal`), and afterwards the store must hold exactly what the pure
engine makes of the commands and their final replies: nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
import time

import pytest

from server.quotes.redis_server import EmbeddedRedis
from tests.reliability.figures import p99, record
from tests.reliability.load import DEPENDENCY_ERRORS, DependencyLoad
from tests.reliability.quote_server import SwitchableQuoteServer
from tests.reliability.sizes import Size
from tests.reliability.verify import audit_store, compare_replies, engine_replay, server_now
from tests.server.conftest import fixed_price
from tests.server.journal_helpers import hold_write_lock as hold_write_lock_until
from tests.server.journal_helpers import wait_until
from tests.support.lines import LineClient
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e

QUOTE_TIMEOUT_S = 1.0


@pytest.fixture
def quote_server():
    server = SwitchableQuoteServer()
    yield server
    server.close()


def start_system(tmp_path, quote_server: SwitchableQuoteServer, extra: list[str],
                 env: dict[str, str] | None = None) -> RunningSystem:
    return RunningSystem(tmp_path / "data", sweep_interval=3600, env=env, extra_args=[
        "--quote-server", f"127.0.0.1:{quote_server.port}",
        "--quote-timeout", str(QUOTE_TIMEOUT_S), *extra]).start()


def run_and_audit(system: RunningSystem, load: DependencyLoad, phases, size: Size):
    """Run the load through the phases, stop the system, check the store against the engine."""
    try:
        asyncio.run(load.run(phases, size.phase_s))
        stopped_ms = time.time_ns() // 1_000_000  # the server expires nothing after this
    finally:
        system.stop()
    done = load.finished()
    lines = [(c.txn, c.text, server_now(c.final, c.attempts[-1].sent_ms))
             for c in sorted(done, key=lambda c: c.user)]  # stable: each user's order
    unavailable = {(c.user, c.txn) for c in done if not c.final.ok and
                   str(c.final.code) == "quote_unavailable"}
    symbols = {t.split(",")[2] for _, t, _ in lines if t.split(",")[0] in ("QUOTE", "BUY", "SELL")}
    engine, expected = engine_replay(lines, {s: fixed_price(s) for s in symbols}, unavailable,
                                     end_ms=stopped_ms)
    audit = audit_store(system.data_dir, engine, set(load.users))
    compare_replies({(c.user, c.txn): c.final for c in done}, expected, audit)
    return audit


def check(load: DependencyLoad, audit) -> None:
    assert not load.unanswered(), load.unanswered()[:5]
    assert all(c.final is not None for c in load.commands)
    assert audit.lost == 0 and audit.doubled == 0 and audit.negative == 0, audit
    assert not audit.state_mismatches, audit.state_mismatches[:5]
    assert not audit.reply_mismatches, audit.reply_mismatches[:5]


def report(item: str, load: DependencyLoad, audit, phases) -> None:
    lines = [load.phase_line(name) for name in ["normal", *[p[0] for p in phases]]]
    errors = load.time_to_error()
    record(item, f"{len(load.commands)} commands, {len(load.attempts())} replies, "
                 f"{len(load.unanswered())} without a reply in time; {audit.lost} lost, "
                 f"{audit.doubled} doubled; time-to-error p99 {p99(errors):.2f} s\n    "
                 + "\n    ".join(lines),
           commands=len(load.commands), unanswered=len(load.unanswered()), lost=audit.lost,
           doubled=audit.doubled, time_to_error_p99=p99(errors))


def flushall(redis: EmbeddedRedis) -> None:
    with socket.create_connection((redis.host, redis.port), timeout=5) as s:
        s.sendall(b"FLUSHALL\r\n")
        assert s.recv(64).startswith(b"+OK")


def test_redis_paused_flushed_and_stopped_mid_run(tmp_path, size, quote_server):
    redis = EmbeddedRedis(tmp_path / "redis")
    try:
        system = start_system(tmp_path, quote_server, ["--redis-url", redis.url])
        load = DependencyLoad(lambda: (system.host, system.port, system.token),
                              size.dependency_users, seed=f"redis-{size.name}")
        phases = [("redis paused", redis.pause), ("redis resumed", redis.resume),
                  ("redis flushed", lambda: flushall(redis)), ("redis stopped", redis.stop)]
        audit = run_and_audit(system, load, phases, size)
    finally:
        redis.stop()
    report("dependencies/redis", load, audit, phases)
    check(load, audit)
    codes = load.codes()
    # Redis only buys speed: without it every quote still comes from the quote server.
    assert codes["quote_unavailable"] == 0 and codes["internal"] == 0, codes


QUOTE_PHASES = ["slow:0.5", "slow:3", "silent", "close_mid_line", "wrong_symbol", "nan",
                "negative", "extra_fields", "ok"]
BAD_QUOTE_MODES = {"slow:3", "silent", "close_mid_line", "wrong_symbol", "nan", "negative",
                   "extra_fields"}


def test_quote_server_slow_silent_cut_and_garbled_mid_run(tmp_path, size, quote_server):
    system = start_system(tmp_path, quote_server, ["--no-redis"])
    load = DependencyLoad(lambda: (system.host, system.port, system.token),
                          size.dependency_users, seed=f"quotes-{size.name}")

    def switch(mode: str):
        return lambda: setattr(quote_server, "mode", mode)

    phases = [(mode, switch(mode)) for mode in QUOTE_PHASES]
    audit = run_and_audit(system, load, phases, size)
    report("dependencies/quote server", load, audit, phases)
    check(load, audit)
    for mode in BAD_QUOTE_MODES:  # the fault reached the users, as an error, not as a price
        assert load.codes(mode)["quote_unavailable"] > 0, (mode, load.codes(mode))
    assert max(load.time_to_error(), default=0) < QUOTE_TIMEOUT_S + 5  # generous
    assert load.codes("ok")["ok"] > 0  # and the system recovered


def hold_write_lock(db: str, seconds: float) -> None:
    """Pause every SQLite writer: hold the database's write lock for `seconds`."""
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        threading.Event().wait(seconds)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@pytest.mark.parametrize("faults", ["slow:0.3", "fail_every:5"])
def test_store_slow_failing_or_locked_mid_run(tmp_path, size, quote_server, faults):
    system = start_system(tmp_path, quote_server, ["--no-redis"],
                          env={"DAYTRADE_STORE_FAULTS": faults})
    db = str(system.data_dir / "shard-0.journal.sqlite")
    load = DependencyLoad(lambda: (system.host, system.port, system.token),
                          size.dependency_users, seed=f"store-{faults}-{size.name}")
    phases = [("shard 0 journal writer paused", lambda: hold_write_lock(db, size.phase_s * 0.8)),
              ("after", None)]
    audit = run_and_audit(system, load, phases, size)
    report(f"dependencies/store {faults}", load, audit, phases)
    check(load, audit)
    codes = load.codes()
    assert set(codes) <= {"ok", *DEPENDENCY_ERRORS} | {
        "insufficient_shares", "no_pending_buy", "no_pending_sell", "amount_too_small"}, codes
    if faults.startswith("fail_every"):
        assert codes["internal"] > 0  # failed commits reached the clients as `internal`


def shard_stats_of(operator: LineClient, shard: int) -> dict | None:
    """Shard `shard`'s STATS, or None while it does not answer them (it may still be starting)."""
    reply = operator.ask("STATS")
    assert reply["ok"], reply
    (stats,) = [s for s in reply["result"]["shards"] if s.get("shard") == shard]
    return stats if "commands" in stats else None


def test_a_paused_sqlite_writer_does_not_stall_the_gateway(tmp_path, quote_server):
    """A PING is answered while another process holds shard 0's journal write lock (the lock
    is released only after the PING's reply, so a stalled gateway fails the read with
    TimeoutError); the command stuck behind the lock is answered once it is released."""
    system = start_system(tmp_path, quote_server, ["--no-redis"])
    try:
        with LineClient(system.host, system.port, timeout=5) as user, \
                LineClient(system.host, system.port, timeout=5) as other:
            assert user.ask(f"AUTH,{system.token}")["ok"]
            assert user.ask("[50000] ADD,alice,1.00")["ok"]
            assert other.ask(f"AUTH,{system.token}")["ok"]
            executed = wait_until(lambda: shard_stats_of(other, 0), 30,
                                  "shard 0 answers STATS")["commands"]
            db = system.data_dir / "shard-0.journal.sqlite"
            held, release = threading.Event(), threading.Event()
            holder = threading.Thread(target=hold_write_lock_until, args=(db, held, release),
                                      daemon=True)
            holder.start()
            try:
                assert held.wait(30), "the write lock was never taken"
                user.send("ADD,bob,1.00")  # bob's shard is 0; no txn: the gateway gives one
                wait_until(lambda: (shard_stats_of(other, 0) or {}).get("commands", 0) > executed,
                           10, "the ADD executed on shard 0, its reply held for the append")
                assert other.ask("PING")["ok"]
            finally:
                release.set()
                holder.join(30)
            added = user.reply()
            assert added["ok"] and added["txn"] > 50000, added
    finally:
        system.stop()
