"""Battery item 1, crashes: shard workers and `daytrade up` itself die during a workload replay.

Shard workers are SIGKILLed at seeded random moments and crash at the named points (after apply
before commit, after commit before reply: DAYTRADE_CRASH_AT); `daytrade up` is SIGKILLed at random
moments and restarted on the same data directory and port. Clients retry `internal`, timeouts and
lost connections with the same txn. Afterwards the store must hold exactly what the pure engine
makes of the same workload: nothing acknowledged lost, nothing applied twice, no negative balance.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path

import pytest

from bench.workload import read_workload, shipped
from protocol.client import DaytradeClient
from server.shards.service import shard_of
from tests.reliability.conftest import free_port
from tests.reliability.figures import p99, record
from tests.reliability.replay import ResilientReplay
from tests.reliability.sizes import Size
from tests.reliability.verify import audit_store, compare_replies, engine_replay, server_now
from tests.server.conftest import workload_prices
from tests.support.lines import LineClient
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e

SHARDS = 2
NAMED_POINTS = ("after_apply", "after_commit")


class RestartableSystem:
    """`daytrade up` on a fixed port and data directory, killed and restarted at will."""

    def __init__(self, data_dir: Path, prices: dict[str, int]) -> None:
        self.data_dir = data_dir
        self.prices = prices
        self.port = free_port()
        self.system: RunningSystem | None = None
        self.named_armed: list[str] = []

    def start(self, crash_at: str | None, crash_shard: int) -> None:
        env = {}
        if crash_at is not None:
            env = {"DAYTRADE_CRASH_SHARD": str(crash_shard), "DAYTRADE_CRASH_AT": crash_at}
            self.named_armed.append(crash_at)
        self.system = RunningSystem(self.data_dir, prices=self.prices, shards=SHARDS,
                                    sweep_interval=3600, env=env,
                                    extra_args=["--port", str(self.port)]).start()

    def endpoint(self) -> tuple[str, int, str]:
        assert self.system is not None
        return self.system.host, self.port, self.system.token

    def kill(self) -> None:
        assert self.system is not None
        self.system.kill()

    def stop(self) -> None:
        if self.system is not None:
            self.system.stop()

    def shard_exits(self, code: int) -> int:
        """How many times a shard exited with `code`, as the gateway logged it."""
        log = self.data_dir.parent / f"{self.data_dir.name}-up.log"
        return log.read_text(errors="replace").count(f"exited with {code}; restarting")


async def operator(system: RestartableSystem) -> DaytradeClient:
    host, port, token = system.endpoint()
    client = await DaytradeClient.connect(host, port, timeout=10)
    assert (await client.auth(token)).ok
    return client


async def shard_pids(system: RestartableSystem) -> list[int]:
    async with await operator(system) as client:
        reply = await client.send("STATS")
        return [s["pid"] for s in reply.result["shards"] if "pid" in s]


async def shards_back(system: RestartableSystem, killed: int, deadline_s: float = 30) -> float:
    """Seconds until every shard answers STATS again, the killed pid no longer among them."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        try:
            pids = await shard_pids(system)
        except (TimeoutError, OSError, ConnectionError):
            pids = []
        if len(pids) == SHARDS and killed not in pids:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"shards did not come back within {deadline_s} s")


async def named_crash_seen(system: RestartableSystem, shard: int, user: str,
                           deadline_s: float = 60) -> None:
    """Wait until `shard` has crashed at its armed point and is serving again. A read for
    `user` (one of the shard's) gives it something to commit: near the end of the replay its
    own users may all be done, and an idle shard never reaches the point."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        try:
            async with await operator(system) as client:
                await client.send(f"DISPLAY_SUMMARY,{user}")  # audited: journaled, committed
                stats = (await client.send("STATS")).result["shards"]
            if stats[shard].get("restarts", 0) >= 1 and "pid" in stats[shard]:
                return
        except (TimeoutError, OSError, ConnectionError):
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"shard {shard} did not crash at its armed point within {deadline_s} s")


async def kill_a_shard(system: RestartableSystem, rng: random.Random) -> int:
    """SIGKILL a random shard worker; its pid. A pid STATS named may be gone already (a shard
    that just crashed at a named point): then ask again once the shards are back."""
    for _ in range(50):
        pids = await shard_pids(system)
        if len(pids) == SHARDS:
            victim = rng.choice(pids)
            try:
                os.kill(victim, signal.SIGKILL)
                return victim
            except ProcessLookupError:
                pass
        await asyncio.sleep(0.1)
    raise AssertionError("no shard to kill")


def crash_plan(size: Size, lines: int, rng: random.Random) -> dict[int, str]:
    """Progress count -> "shard" or "up": when to kill what, at distinct random moments."""
    kinds = ["shard"] * size.shard_kills + ["up"] * size.up_kills
    moments = rng.sample(range(lines // 20, lines - lines // 20), len(kinds))
    rng.shuffle(kinds)
    return dict(zip(sorted(moments), kinds))


def test_crashes_lose_nothing_acknowledged_and_apply_nothing_twice(tmp_path, size):
    rng = random.Random(f"crash-{size.name}")
    prices = workload_prices(size.workload)
    items = [i for i in read_workload(shipped(size.workload)) if i.command != "DUMPLOG"]
    plan = crash_plan(size, len(items), rng)
    users_of: dict[int, list[str]] = {}
    for user in sorted({i.user for i in items if i.user}):
        users_of.setdefault(shard_of(user, SHARDS), []).append(user)
    named = [NAMED_POINTS[i % 2] for i in range(size.named_crashes)]
    system = RestartableSystem(tmp_path / "data", prices)
    shard_kill_recovery: list[float] = []
    up_recovery: list[float] = []
    events = asyncio.Lock()

    def arm_next() -> str | None:
        return named.pop(0) if named else None

    async def on_progress(done: int) -> None:
        kind = plan.pop(done, None)
        if kind is None:
            return
        async with events:
            if kind == "shard":
                victim = await kill_a_shard(system, rng)
                shard_kill_recovery.append(await shards_back(system, victim))
            else:
                killed_at = time.monotonic()
                system.kill()
                armed, shard = arm_next(), rng.randrange(SHARDS)
                await asyncio.to_thread(system.start, armed, shard)
                async with await operator(system) as client:
                    assert (await client.send("PING")).ok
                up_recovery.append(time.monotonic() - killed_at)
                if armed is not None:  # no other kill before the armed shard crashed by itself
                    await named_crash_seen(system, shard, users_of[shard][0])

    async def scenario() -> ResilientReplay:
        replay = ResilientReplay(system.endpoint)
        await replay.run(items, on_progress)
        return replay

    system.start(arm_next(), rng.randrange(SHARDS))
    try:
        replay = asyncio.run(scenario())
        stopped_ms = time.time_ns() // 1_000_000  # the server expires nothing after this
    finally:
        system.stop()

    # Times as the server saw them: a run that outlasts 60 s expires pending entries there.
    timed = []
    for item in items:
        outcome = replay.outcomes[(item.user, item.txn)]
        timed.append((item.txn, item.text, server_now(outcome.reply, outcome.sent_ms)))
    engine, expected = engine_replay(timed, prices, end_ms=stopped_ms)
    audit = audit_store(system.data_dir, engine,
                        {i.user for i in items if i.user})
    compare_replies({key: o.reply for key, o in replay.outcomes.items()}, expected, audit)
    recovery = p99(replay.recoveries)
    kills = size.shard_kills + len(system.named_armed)
    worst = max(replay.recoveries, default=0.0)
    record("crash", f"{kills + size.up_kills} kills, {audit.lost} lost, {audit.doubled} doubled, "
                    f"recovery <= {worst:.1f} s. Details: "
                    f"{kills} shard crashes ({size.shard_kills} SIGKILL at random moments, "
                    f"{len(system.named_armed)} at named points {sorted(set(system.named_armed))}"
                    f"), {size.up_kills} SIGKILL+restart of daytrade up; {audit.lost} lost, "
                    f"{audit.doubled} doubled, {audit.negative} negative; recovery p99 "
                    f"{recovery:.2f} s (client-side, first failed attempt to final reply), "
                    f"shard back p99 {p99(shard_kill_recovery):.2f} s, up back p99 "
                    f"{p99(up_recovery):.2f} s; {replay.retried} of {len(items)} commands retried",
           kills=kills, up_kills=size.up_kills, lost=audit.lost, doubled=audit.doubled,
           negative=audit.negative, recovery_p99=recovery, recovery_max=worst,
           failures=dict(replay.failures))
    assert not plan, f"crashes planned but not carried out: {plan}"
    assert len(system.named_armed) == size.named_crashes
    assert system.shard_exits(137) == size.named_crashes  # the named points were reached
    assert system.shard_exits(-9) == size.shard_kills
    assert len(replay.outcomes) == len(items)
    assert audit.lost == 0 and audit.doubled == 0 and audit.negative == 0, audit
    assert not audit.state_mismatches, audit.state_mismatches[:5]
    assert not audit.reply_mismatches, audit.reply_mismatches[:5]


def test_a_txnless_command_after_a_restart_is_above_every_txn_seen_before(tmp_path):
    data_dir = tmp_path / "data"
    with RunningSystem(data_dir) as system, LineClient(system.host, system.port) as op:
        assert op.ask(f"AUTH,{system.token}")["ok"]
        assert op.ask("ADD,xavier,1.00")["ok"]  # a txn-less line: the gateway reserves txns
        assert op.ask("[50000] ADD,yvonne,1.00")["ok"]
    with RunningSystem(data_dir) as system, LineClient(system.host, system.port) as op:
        assert op.ask(f"AUTH,{system.token}")["ok"]
        reply = op.ask("ADD,yvonne,2.00")
        assert reply["ok"], reply
        assert reply["txn"] > 50000
