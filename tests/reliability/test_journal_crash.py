"""Kill -9 of a shard during its journal appends and its background snapshots (issue 13).

A workload is replayed by per-user closed-loop clients that retry `internal` with the same txn,
while shard workers are SIGKILLed at seeded random moments; with `--snapshot-interval 0.2` a
snapshot is written every 0.2 s beside the appends, so kills land in both. After each restart the
killed shard's journal is contiguous (seq 1..n, the snapshot at or below n); at the end the state a
restart recovers from the journals is exactly what the pure engine makes of the workload (0 lost,
0 doubled, 0 negative) and DUMPLOG is valid against the schema.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from dataclasses import dataclass

import pytest

from bench.workload import read_workload, shipped
from protocol.client import DaytradeClient
from server.audit.validate import validate_log
from tests.reliability.figures import p99, record
from tests.reliability.replay import ResilientReplay
from tests.reliability.verify import audit_store, compare_replies, engine_replay, server_now
from tests.server.conftest import workload_prices
from tests.server.journal_helpers import dumplog, journal_seqs, operator, snapshot_seq
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e

SHARDS = 2


@dataclass(frozen=True)
class CrashSize:
    """How much one run does (the CI size takes a few seconds; soak is on demand)."""

    name: str
    workload: str
    kills: int  # SIGKILLs of a shard worker at random moments
    max_delay_s: float  # each kill waits a random 0 .. max_delay_s after its moment


CI = CrashSize("ci", "10user.txt", kills=5, max_delay_s=0.3)
SOAK = CrashSize("soak", "45user.txt", kills=40, max_delay_s=0.5)


@pytest.fixture(params=[pytest.param(CI, id="ci"),
                        pytest.param(SOAK, id="soak", marks=pytest.mark.soak)])
def crash_size(request: pytest.FixtureRequest) -> CrashSize:
    return request.param


async def stats(system: RunningSystem) -> list[dict]:
    async with await DaytradeClient.connect(system.host, system.port, timeout=10) as client:
        assert (await client.auth(system.token)).ok
        reply = await client.send("STATS")
        return reply.result["shards"]


async def back(system: RunningSystem, shard: int, killed: int, deadline_s: float = 60) -> float:
    """Seconds until `shard` answers STATS again with a pid other than `killed`."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        try:
            pid = (await stats(system))[shard].get("pid")
        except (TimeoutError, OSError, ConnectionError):
            pid = None
        if pid is not None and pid != killed:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"shard {shard} did not come back within {deadline_s} s")


def contiguous(system: RunningSystem, shard: int) -> tuple[int, int]:
    """Check shard `shard`'s journal holds seq 1..n and its snapshot reflects at most n;
    (n, the snapshot's seq)."""
    seqs = journal_seqs(system.data_dir, shard)
    assert seqs == list(range(1, len(seqs) + 1)), (shard, seqs[:3], len(seqs))
    snap = snapshot_seq(system.data_dir, shard)
    assert snap <= len(seqs), (shard, snap, len(seqs))
    return len(seqs), snap


def test_kill_9_during_appends_and_snapshots_loses_nothing(tmp_path, crash_size):
    rng = random.Random(f"journal-crash-{crash_size.name}")
    prices = workload_prices(crash_size.workload)
    items = [i for i in read_workload(shipped(crash_size.workload)) if i.command != "DUMPLOG"]
    moments = sorted(rng.sample(range(len(items) // 20, len(items) - len(items) // 20),
                                crash_size.kills))
    plan = dict.fromkeys(moments, True)
    system = RunningSystem(tmp_path / "data", prices=prices, shards=SHARDS, sweep_interval=3600,
                           extra_args=["--snapshot-interval", "0.2"]).start()
    killing = asyncio.Lock()
    back_after: list[float] = []
    # (shard, journal records, snapshot seq) after each kill
    records_at_restart: list[tuple[int, tuple[int, int]]] = []

    async def on_progress(done: int) -> None:
        if plan.pop(done, None) is None:
            return
        async with killing:
            shard = rng.randrange(SHARDS)
            await asyncio.sleep(rng.uniform(0, crash_size.max_delay_s))  # load goes on
            victim = (await stats(system))[shard]["pid"]
            os.kill(victim, signal.SIGKILL)
            back_after.append(await back(system, shard, victim))
            records_at_restart.append(
                (shard, await asyncio.to_thread(contiguous, system, shard)))

    async def scenario() -> ResilientReplay:
        replay = ResilientReplay(lambda: (system.host, system.port, system.token))
        await replay.run(items, on_progress)
        return replay

    try:
        replay = asyncio.run(scenario())
        with operator(system, timeout=120) as op:
            dump = dumplog(system, op, "after-kills.xml")
        stopped_ms = time.time_ns() // 1_000_000  # the server expires nothing after this
    finally:
        system.stop()
    final_records = [contiguous(system, shard) for shard in range(SHARDS)]

    timed = []
    for item in items:
        outcome = replay.outcomes[(item.user, item.txn)]
        timed.append((item.txn, item.text, server_now(outcome.reply, outcome.sent_ms)))
    engine, expected = engine_replay(timed, prices, end_ms=stopped_ms)
    audit = audit_store(system.data_dir, engine, {i.user for i in items if i.user})
    compare_replies({key: o.reply for key, o in replay.outcomes.items()}, expected, audit)
    up_log = system.data_dir.parent / f"{system.data_dir.name}-up.log"
    exits = up_log.read_text(errors="replace").count("exited with -9; restarting")
    record("journal crash", f"{crash_size.kills} SIGKILLs of a shard ({exits} seen by the "
                            f"gateway), {audit.lost} lost, {audit.doubled} doubled, "
                            f"{audit.negative} negative; shard back p99 {p99(back_after):.2f} s; "
                            f"{replay.retried} of {len(items)} commands retried; (shard, (journal "
                            f"records, snapshot seq)) at the restarts {records_at_restart}, at "
                            f"the end {final_records}",
           kills=crash_size.kills, lost=audit.lost, doubled=audit.doubled,
           negative=audit.negative)
    assert not plan, f"kills planned but not carried out: {plan}"
    assert len(back_after) == crash_size.kills == exits
    assert len(replay.outcomes) == len(items)
    assert audit.lost == 0 and audit.doubled == 0 and audit.negative == 0, audit
    assert not audit.state_mismatches, audit.state_mismatches[:5]
    assert not audit.reply_mismatches, audit.reply_mismatches[:5]
    assert validate_log(dump) == []
    # The snapshots were being written while the shards were killed.
    assert any(snap for _shard, (_n, snap) in records_at_restart), records_at_restart
