"""SIGKILL a shard in the middle of a replay: nothing acknowledged is lost, nothing is doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from bench.workload import read_workload, shipped
from protocol.client import DaytradeClient
from tests.server.conftest import workload_prices
from tests.server.test_end_to_end import comparable, engine_replay
from tests.server.workload_client import ClosedLoopReplay

pytestmark = pytest.mark.e2e


async def shard_pids(host: str, port: int, token: str) -> list[int]:
    async with await DaytradeClient.connect(host, port) as client:
        await client.auth(token)
        reply = await client.send("STATS")
        return [s["pid"] for s in reply.result["shards"] if "pid" in s]


async def wait_for_shards(host: str, port: int, token: str, old: set[int], count: int,
                          deadline_s: float = 30.0) -> float:
    """Seconds until `count` shards answer STATS again, none of them with a killed pid."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        pids = await shard_pids(host, port, token)
        if len(pids) == count and not (set(pids) & old):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"shards did not come back within {deadline_s} s")


def test_killing_a_shard_mid_replay_loses_nothing_acknowledged_and_doubles_nothing(
        system_factory):
    prices = workload_prices("10user.txt")
    system = system_factory(prices=prices, sweep_interval=3600)
    items = [i for i in read_workload(shipped("10user.txt")) if i.command != "DUMPLOG"]
    kill_at = {len(items) // 4, len(items) // 2, (3 * len(items)) // 4}
    killed: set[int] = set()
    recoveries: list[float] = []

    async def scenario() -> tuple[ClosedLoopReplay, dict]:
        replay = ClosedLoopReplay(system.host, system.port, system.token)

        async def on_progress(done: int) -> None:
            if done in kill_at:
                kill_at.discard(done)
                pids = await shard_pids(system.host, system.port, system.token)
                victim = pids[len(killed) % len(pids)]
                os.kill(victim, signal.SIGKILL)
                killed.add(victim)
                recoveries.append(await wait_for_shards(system.host, system.port, system.token,
                                                        killed, len(pids)))

        await replay.run(items, on_progress)
        summaries = {}
        async with await DaytradeClient.connect(system.host, system.port) as client:
            await client.auth(system.token)
            for user in sorted({i.user for i in items if i.user}):
                summaries[user] = (await client.send(f"DISPLAY_SUMMARY,{user}")).result
        await replay.close()
        return replay, summaries

    replay, summaries = asyncio.run(scenario())
    print(f"\n{len(killed)} shard kills, {replay.retries} retries, recovery "
          + ", ".join(f"{r:.2f} s" for r in recoveries))
    assert len(killed) == 3
    assert len(replay.replies) == len(items)
    oracle = engine_replay("10user.txt", prices)
    for user, result in summaries.items():
        assert comparable(result) == comparable(oracle.summary(user)), user
