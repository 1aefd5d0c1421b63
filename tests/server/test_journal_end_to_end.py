"""Issue 13's defects as regression tests over the wire, against the real `daytrade up`.

1. Queueing does not eat a user's 60 s (soak: it takes the real 60 s; the fast variant is
   tests/shards/test_service.py::test_a_command_stamped_before_expiry_is_judged_at_its_stamp_...).
2. The shard's reactor never blocks on the store (another process holds the journal's lock).
3. No ghosts: a batch that a crash cut short leaves no audit event behind.
4. Trigger firings take their txns from the gateway's one allocator.
5. Recovery after SIGKILL of `daytrade up` and all its children; the partition count is fixed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from bench.workload import read_workload, shipped
from server.audit.validate import validate_log
from tests.server.conftest import workload_prices
from tests.server.journal_helpers import (
    PerSymbolQuoteServer,
    Wire,
    dumped_events,
    dumplog,
    event_key,
    hold_write_lock,
    kill_everything,
    now_ms,
    operator,
    shard_stats,
    user_of_shard,
    wait_until,
)
from tests.server.workload_client import ClosedLoopReplay
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e


def cents(dollars: str) -> int:
    return int(Decimal(dollars) * 100)


@pytest.fixture
def quote_server():
    server = PerSymbolQuoteServer()
    yield server
    server.close()


# --- 1. queueing does not eat a user's 60 s -----------------------------------------------------


@pytest.mark.soak
def test_a_commit_stamped_inside_the_60_s_commits_though_it_waited_behind_a_slow_quote(
        tmp_path, quote_server):
    """BUY at t0 (a fast quote); at t0 + 59 s a QUOTE whose quote server answers in 2.5 s and
    COMMIT_BUY pipelined behind it: the gateway stamped the COMMIT_BUY inside the 60 s, so it
    commits although it runs after the pending buy's expiry time; no pending_expired."""
    quote_server.prices.update({"FST": 1_000, "SLW": 2_000})
    quote_server.latency["SLW"] = 2.5
    system = RunningSystem(tmp_path / "data", sweep_interval=3600, extra_args=[
        "--quote-server", f"127.0.0.1:{quote_server.port}", "--no-redis",
        "--quote-timeout", "10"]).start()
    try:
        with operator(system) as op:
            assert op.ask("WATCH,alice")["ok"]
            assert op.ask("ADD,alice,1000.00")["ok"]
            buy = op.ask("BUY,alice,FST,100.00")
            assert buy["ok"], buy
            expires_at = buy["result"]["expires_at"]
            # Until t0 + 59 s (the gateway stamps with the same wall clock as ours).
            time.sleep(max(0.0, (expires_at - 1_000 - now_ms()) / 1000))
            op.send("QUOTE,alice,SLW", "COMMIT_BUY,alice")
            quote = op.reply(timeout=30)
            quote_received = now_ms()
            commit = op.reply(timeout=30)
            assert quote["ok"] and quote["cmd"] == "QUOTE", quote
            # The scenario happened: the COMMIT_BUY ran only after the pending buy's expiry.
            assert quote_received > expires_at, (quote_received, expires_at)
            assert commit["ok"], commit
            assert commit["result"]["holding"] == 10
            summary = op.ask("DISPLAY_SUMMARY,alice")["result"]
            (committed,) = [t for t in summary["transactions"] if t["kind"] == "buy_commit"]
            assert committed["time"] < expires_at  # judged at the gateway's stamp
            assert summary["holdings"] == {"FST": 10} and summary["pending_buys"] == []
            assert summary["cash"] == "900.00"
            assert op.poll(1.0) is None  # nothing else comes: no pending_expired
            assert op.events == []
    finally:
        system.stop()


# --- 2. the shard's reactor never blocks on the store -------------------------------------------


def test_a_locked_journal_stalls_only_the_replies_of_its_shard(tmp_path, quote_server):
    """Another process holds shard 0's journal write lock: STATS is answered at once, a user of
    shard 1 is served, a (txn-less) command of a user of shard 0 gets its reply only once the
    lock is released, applied once."""
    quote_server.prices["ABC"] = 50
    system = RunningSystem(tmp_path / "data", sweep_interval=3600, extra_args=[
        "--quote-server", f"127.0.0.1:{quote_server.port}", "--no-redis"]).start()
    zero, one = user_of_shard(0, 2, "zed"), user_of_shard(1, 2, "one")
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(
        system.data_dir / "shard-0.journal.sqlite", held, release), daemon=True)
    try:
        with operator(system) as op, operator(system) as user0, operator(system) as user1:
            assert op.ask(f"[50000] ADD,{zero},1.00")["ok"]
            assert op.ask(f"ADD,{one},1.00")["ok"]
            holder.start()
            assert held.wait(30)
            user0.send(f"ADD,{zero},1.00")  # no txn: the gateway gives one, from memory
            stats = op.ask("STATS", timeout=30)
            assert not release.is_set()
            assert stats["ok"], stats
            shards = stats["result"]["shards"]
            assert [s.get("shard") for s in shards] == [0, 1] and all("pid" in s for s in shards)
            other = user1.ask(f"ADD,{one},2.00", timeout=30)  # shard 1 goes on
            assert other["ok"] and other["result"]["cash"] == "3.00", other
            assert user1.ask(f"BUY,{one},ABC,1.00", timeout=30)["ok"]
            # Shard 0 applied it but cannot make it durable: no reply yet.
            assert user0.poll(1.0) is None
            release.set()
            holder.join(30)
            reply = user0.reply(timeout=60)
            assert reply["ok"], reply
            assert reply["txn"] > 50000 and reply["result"]["cash"] == "2.00", reply
            assert user0.poll(0.5) is None  # one reply, not two
            summary = op.ask(f"DISPLAY_SUMMARY,{zero}")["result"]
            assert summary["cash"] == "2.00" and summary["transactions_total"] == 2, summary
    finally:
        release.set()
        if holder.is_alive():
            holder.join(30)
        system.stop()


# --- 3. no ghosts -------------------------------------------------------------------------------


def mongo_url() -> str | None:
    url = os.environ.get("DAYTRADE_MONGO_URL")
    if not url:
        return None
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/daytrade_ghosts_{uuid.uuid4().hex[:12]}"))


@pytest.fixture(params=["sqlite", "mongo"])
def store_args(request):
    if request.param == "sqlite":
        yield []
        return
    url = mongo_url()
    if url is None:
        pytest.skip("DAYTRADE_MONGO_URL is not set")
    yield ["--mongo-url", url]
    import pymongo

    client = pymongo.MongoClient(url)
    try:
        client.drop_database(urlsplit(url).path.lstrip("/"))
    finally:
        client.close()


def test_a_batch_cut_short_by_a_crash_leaves_no_audit_event(tmp_path, store_args):
    """Shard 0 dies between apply and commit (DAYTRADE_CRASH_AT=after_apply): the command that
    no client retries leaves no trace in DUMPLOG, the retried one is there once, and every
    userCommand in the dump was acknowledged."""
    ghost, retried = user_of_shard(0, 2, "ghost"), user_of_shard(0, 2, "alive")
    other = user_of_shard(1, 2, "other")
    system = RunningSystem(tmp_path / "data", sweep_interval=3600, extra_args=store_args,
                           env={"DAYTRADE_CRASH_AT": "after_apply",
                                "DAYTRADE_CRASH_SHARD": "0"}).start()
    acknowledged: list[dict[str, Any]] = []
    try:
        with operator(system) as op:
            op.send(f"[100] ADD,{ghost},5.00", f"[101] ADD,{retried},7.00")
            first = sorted([op.reply(timeout=60), op.reply(timeout=60)],
                           key=lambda r: r["txn"])
            assert first[0]["txn"] == 100 and first[0]["error"]["code"] == "internal", first
            wait_until(lambda: shard_stats(system)[0].get("restarts", 0) >= 1
                       and "pid" in shard_stats(system)[0], 60, "shard 0 restarted")
            if not first[1]["ok"]:  # it went down with the batch: retry it, same txn
                assert first[1]["error"]["code"] == "internal", first[1]
                again = op.ask(f"[101] ADD,{retried},7.00", timeout=60)
                assert again["ok"] and not again.get("replayed"), again
                acknowledged.append(again)
            else:
                acknowledged.append(first[1])
            acknowledged.append(op.ask(f"[102] ADD,{other},3.00", timeout=60))
            assert all(r["ok"] for r in acknowledged), acknowledged
            path = dumplog(system, op, "ghosts.xml")
            ghost_summary = op.ask(f"DISPLAY_SUMMARY,{ghost}")  # audited: after the dump
            up_log = system.log_tail()
    finally:
        system.stop()
    assert "exited with 137" in up_log
    # The lost ADD made no account: unknown (or, were it kept as an empty one, nothing in it).
    if ghost_summary["ok"]:
        assert ghost_summary["result"]["transactions_total"] == 0, ghost_summary
    else:
        assert ghost_summary["error"]["code"] == "unknown_user", ghost_summary
    assert validate_log(path) == []
    events = dumped_events(path)
    assert not [e for e in events if e.get("username") == ghost or e["transactionNum"] == "100"]
    commands = Counter((e["transactionNum"], e.get("username"), e.get("command"))
                       for e in events if e["kind"] == "userCommand")
    acked = {(str(r["txn"]), r["result"]["user"], r["cmd"]) for r in acknowledged}
    trading = {k: n for k, n in commands.items() if k[2] != "DUMPLOG"}
    assert set(trading) == acked, trading
    assert all(n == 1 for n in commands.values()), commands


# --- 4. trigger txns ----------------------------------------------------------------------------


def test_a_trigger_firing_takes_a_txn_above_everything_before_it_and_below_everything_after(
        tmp_path):
    """A buy trigger is armed at a price the quote is already below; a stream of txn-less lines
    runs across the firing: the lines answered before the trigger was armed have txns below the
    firing's, the lines sent after its trigger_fired push above it, and in DUMPLOG no two
    commands or firings share a txn."""
    system = RunningSystem(tmp_path / "data", prices={"TRG": 1_000}, sweep_interval=0.2).start()
    owner = "trigowner"
    streamed: list[tuple[float, float, int]] = []  # (sent, received, txn), monotonic
    stop = threading.Event()
    failures: list[BaseException] = []

    def stream(wire: Wire) -> None:
        try:
            for i in range(20_000):  # bounded; stopped by `stop` long before
                if stop.is_set():
                    return
                sent = time.monotonic()
                reply = wire.ask(f"ADD,streamer{i % 5},0.01", timeout=30)
                assert reply["ok"], reply
                streamed.append((sent, time.monotonic(), reply["txn"]))
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    try:
        with operator(system) as op, operator(system) as streaming:
            assert op.ask("WATCH,trigowner")["ok"]
            assert op.ask(f"ADD,{owner},100.00")["ok"]
            explicit = op.ask("[7000] ADD,streamer0,1.00")
            assert explicit["ok"], explicit
            thread = threading.Thread(target=stream, args=(streaming,), daemon=True)
            thread.start()
            try:
                wait_until(lambda: len(streamed) >= 30 or failures, 30, "the stream runs")
                assert op.ask(f"SET_BUY_AMOUNT,{owner},TRG,100.00")["ok"]
                armed_at = time.monotonic()
                armed = op.ask(f"SET_BUY_TRIGGER,{owner},TRG,15.00")
                assert armed["ok"], armed
                fired_at, fired = op.wait_event("trigger_fired", 60)
                count = len(streamed)
                wait_until(lambda: len(streamed) >= count + 30 or failures, 30,
                           "the stream runs after the firing")
            finally:
                stop.set()
                thread.join(60)
            assert not failures, failures
            assert fired["user"] == owner and fired["shares"] == 10, fired
            path = dumplog(system, op, "triggers.xml")
    finally:
        system.stop()
    txn = fired["txn"]
    assert explicit["txn"] < txn and armed["txn"] < txn
    before = [t for sent, received, t in streamed if received < armed_at]
    after = [t for sent, received, t in streamed if sent > fired_at]
    assert before and after
    assert max(before) < txn < min(after), (max(before), txn, min(after))
    txns = [t for _, _, t in streamed]
    assert txn not in txns and txns == sorted(set(txns))
    assert validate_log(path) == []
    events = dumped_events(path)
    firings = [e for e in events if e["kind"] == "systemEvent"]
    assert [(e["transactionNum"], e.get("username")) for e in firings] == [(str(txn), owner)]
    owners = Counter(e["transactionNum"] for e in events
                     if e["kind"] in ("userCommand", "systemEvent"))
    assert [t for t, n in owners.items() if n > 1] == []


# --- 5. recovery --------------------------------------------------------------------------------


def summaries(system: RunningSystem, users: list[str]) -> dict[str, dict[str, Any]]:
    with operator(system, timeout=60) as op:
        result = {}
        for user in users:
            reply = op.ask(f"DISPLAY_SUMMARY,{user}")
            assert reply["ok"], reply
            result[user] = reply["result"]
        return result


def expired_meanwhile(before: dict[str, Any], after: dict[str, Any], by_ms: int) -> dict[str, Any]:
    """`before` as it is once the pending entries missing from `after` expired (each must have
    been due by `by_ms`): released cash and shares back, their release records added."""
    expected = {**before, "holdings": dict(before["holdings"])}
    gone = set()
    cash = cents(before["cash"])
    for side in ("pending_buys", "pending_sells"):
        kept = []
        for entry in before[side]:
            if entry in after[side]:
                kept.append(entry)
                continue
            assert entry["expires_at"] <= by_ms, (before["user"], entry, by_ms)
            gone.add(entry["txn"])
            if side == "pending_buys":
                cash += entry["shares"] * cents(entry["price"])
            else:
                held = expected["holdings"].get(entry["symbol"], 0)
                expected["holdings"][entry["symbol"]] = held + entry["shares"]
        expected[side] = kept
    if not gone:
        return before
    expected["cash"] = f"{Decimal(cash) / 100:.2f}"
    expected["transactions_total"] = before["transactions_total"] + len(gone)
    releases = [t for t in after["transactions"]
                if t["kind"] in ("buy_release", "sell_release") and t["txn"] in gone]
    assert len(releases) == len(gone), (before["user"], releases, gone)
    rest = [t for t in after["transactions"] if t not in releases]
    expected["transactions"] = releases + before["transactions"][:len(rest)]
    return expected


def restart(data_dir: Path, prices: dict[str, int], shards: int = 2) -> RunningSystem:
    return RunningSystem(data_dir, prices=prices, shards=shards, sweep_interval=3600).start()


@pytest.mark.parametrize("workload", [
    "10user.txt", pytest.param("45user.txt", marks=pytest.mark.soak)])
def test_sigkill_of_everything_right_after_a_workload_then_a_restart_recovers_it_all(
        tmp_path, workload):
    prices = workload_prices(workload)
    items = [i for i in read_workload(shipped(workload)) if i.command != "DUMPLOG"]
    users = sorted({i.user for i in items if i.user})
    data_dir = tmp_path / "data"
    system = restart(data_dir, prices)
    try:
        async def replay() -> ClosedLoopReplay:
            client = ClosedLoopReplay(system.host, system.port, system.token)
            try:
                await client.run(items)
            finally:
                await client.close()
            return client

        replayed = asyncio.run(replay())
        assert len(replayed.replies) == len(items)
        before = summaries(system, users)
        with operator(system, timeout=120) as op:
            before_dump = dumplog(system, op, "before.xml")
        kept = tmp_path / "before.xml"
        shutil.copy(before_dump, kept)
        shard_pids = {s["pid"] for s in shard_stats(system)}
        victims = kill_everything(system)
    finally:
        system.stop()
    assert len(shard_pids) == 2 and shard_pids <= set(victims), (shard_pids, victims)

    started = time.monotonic()
    system = restart(data_dir, prices)
    try:
        with operator(system, timeout=120) as op:
            first = op.ask(f"DISPLAY_SUMMARY,{users[0]}", timeout=120)
        answering_s = time.monotonic() - started
        assert first["ok"], first
        after = summaries(system, users)
        after_ms = now_ms()
        with operator(system, timeout=120) as op:
            after_dump = dumplog(system, op, "after.xml")
    finally:
        system.stop()
    print(f"\n{workload}: {len(items)} commands; answering {answering_s:.2f} s after the "
          "restart began")
    assert answering_s < 60  # generous: the issue's own bound (2 s) is a benchmark
    for user in users:
        assert after[user] == expired_meanwhile(before[user], after[user], after_ms), user
    assert validate_log(after_dump) == []
    missing = Counter(map(event_key, dumped_events(kept))) - Counter(
        map(event_key, dumped_events(after_dump)))
    assert not missing, list(missing)[:5]

    refused = subprocess.run([sys.executable, "-m", "daytrade", "up", "--port", "0",
                              "--data-dir", str(data_dir), "--shards", "3"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused
    assert "made with 2 shards, not 3" in refused.stderr and "--shards 2" in refused.stderr
