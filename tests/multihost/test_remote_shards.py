"""daytrade with its shards on other hosts (network namespaces): the same results as local mode,
a pulled cable and a dead host lose nothing acknowledged, a second process for a shard is
fenced, a wrong cluster secret is refused."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.cluster import Cluster, write_secret
from bench.hosts import SHARD_PORT, shard_args
from bench.workload import read_workload, shipped
from protocol.client import DaytradeClient
from server.audit.validate import validate_log
from server.shards.service import shard_of
from tests.reliability.replay import RETRIED_CODES, ResilientReplay
from tests.reliability.verify import audit_store, compare_replies, engine_replay, server_now
from tests.server.conftest import workload_prices
from tests.server.test_end_to_end import comparable, replay_through_server
from tests.support.system import RunningSystem

pytestmark = [pytest.mark.multihost, pytest.mark.e2e]

WORKLOAD = "10user.txt"
#: No trigger sweep during a run, so the server and a pure replay see the same history.
NO_SWEEP = ["--sweep-interval", "3600"]
#: The fault's own wait is bounded: a fault that is not seen by then fails the test.
FAULT_WAIT_S = 30.0


@pytest.fixture
def prices() -> dict[str, int]:
    return workload_prices(WORKLOAD)


@pytest.fixture
def cluster(network, tmp_path: Path, prices) -> Cluster:
    return Cluster(network, tmp_path, prices, shard_args=NO_SWEEP)


def trading_items() -> list:
    return [i for i in read_workload(shipped(WORKLOAD)) if i.command != "DUMPLOG"]


async def replay_and_dump(host: str, port: int,
                          token: str) -> tuple[list, list, dict, dict, list]:
    """The workload through the server, then each user's DUMPLOG to a file: (the workload's
    lines, their replies, DISPLAY_SUMMARY by user, the dump file's path by user, the replies
    to the workload's own all-users DUMPLOG)."""
    trading, replies, all_users, summaries = await replay_through_server(host, port, token,
                                                                          WORKLOAD)
    client = await DaytradeClient.connect(host, port, timeout=60)
    try:
        assert (await client.auth(token)).ok
        dumps = {}
        for user in summaries:
            reply = await client.send(f"DUMPLOG,{user},{user}.xml")
            assert reply.ok, reply
            dumps[user] = reply.result["path"]
    finally:
        await client.close()
    return trading, replies, summaries, dumps, all_users


def audit_records(path: str) -> Counter:
    """How many audit records of each kind a DUMPLOG file holds; quoteServer records aside:
    they count quote fetches, which depend on the quote cache's timing, not on the commands."""
    return Counter(re.findall(r"<(userCommand|accountTransaction|systemEvent|errorEvent)>",
                              Path(path).read_text()))


def test_the_ten_user_workload_through_shards_on_other_hosts_gives_local_modes_results(
        cluster: Cluster, tmp_path: Path, prices) -> None:
    trading, replies, summaries, dumps, all_users = cluster.on_client(
        lambda: replay_and_dump(*cluster.endpoint()))
    with RunningSystem(tmp_path / "local", prices=prices, sweep_interval=3600) as local:
        _, local_replies, local_summaries, local_dumps, _ = asyncio.run(
            replay_and_dump(local.host, local.port, local.token))

    assert len(replies) == len(trading)
    assert [(r.txn, r.ok, r.code) for r in replies] == [
        (r.txn, r.ok, r.code) for r in local_replies]
    assert {u: comparable(s) for u, s in summaries.items()} == {
        u: comparable(s) for u, s in local_summaries.items()}
    for user, path in dumps.items():
        assert validate_log(path) == [], user
        assert audit_records(path) == audit_records(local_dumps[user]), user
    # The shards' journals share one directory here, so a shard can dump every user's.
    assert len(all_users) == 1 and all_users[0].ok, all_users
    assert validate_log(all_users[0].result["path"]) == []


def audit_run(cluster: Cluster, replay: ResilientReplay, items: list, prices) -> None:
    """Nothing acknowledged lost, nothing applied twice, every final reply as the engine's."""
    stopped_ms = time.time_ns() // 1_000_000
    cluster.stop_shards()
    timed = []
    for item in items:
        outcome = replay.outcomes[(item.user, item.txn)]
        timed.append((item.txn, item.text, server_now(outcome.reply, outcome.sent_ms)))
    engine, expected = engine_replay(timed, prices, end_ms=stopped_ms)
    audit = audit_store(cluster.storage, engine, {i.user for i in items if i.user})
    compare_replies({key: o.reply for key, o in replay.outcomes.items()}, expected, audit)
    assert len(replay.outcomes) == len(items)
    assert audit.lost == 0 and audit.doubled == 0 and audit.negative == 0, audit.examples
    assert not audit.state_mismatches, audit.state_mismatches[:5]
    assert not audit.reply_mismatches, audit.reply_mismatches[:5]


def done_by_shard(replay: ResilientReplay, shard: int, count: int) -> int:
    return sum(1 for user, _ in replay.outcomes if user and shard_of(user, count) == shard)


def test_a_shard_hosts_pulled_cable_gives_only_its_users_clear_errors_and_loses_nothing(
        cluster: Cluster, prices) -> None:
    items = trading_items()
    replay = ResilientReplay(cluster.endpoint, retried_codes=(*RETRIED_CODES,
                                                               "shard_unavailable"))
    seen: dict[str, int] = {}
    faults: list[asyncio.Task] = []

    async def pull_the_cable() -> None:
        host = cluster.shard_hosts[0]
        await asyncio.to_thread(host.set_link, False)
        others_before = done_by_shard(replay, 1, cluster.count)
        deadline = time.monotonic() + FAULT_WAIT_S
        while time.monotonic() < deadline and not replay.failures.get("shard_unavailable"):
            await asyncio.sleep(0.1)
        seen["errors"] = replay.failures.get("shard_unavailable", 0)
        seen["others_served"] = done_by_shard(replay, 1, cluster.count) - others_before
        await asyncio.to_thread(host.set_link, True)

    async def on_progress(done: int) -> None:
        if done == len(items) // 3:
            faults.append(asyncio.create_task(pull_the_cable()))

    async def scenario() -> None:
        await replay.run(items, on_progress)
        await asyncio.gather(*faults)

    cluster.on_client(scenario)

    assert seen["errors"] > 0, "no shard_unavailable while the cable was out"
    assert seen["others_served"] > 0, "the other shard's users were not served meanwhile"
    retried_users = {user for (user, _), o in replay.outcomes.items() if o.attempts > 1}
    assert retried_users and all(shard_of(u, cluster.count) == 0 for u in retried_users)
    audit_run(cluster, replay, items, prices)


def test_a_shard_killed_and_started_on_another_host_recovers_its_users(
        network, cluster: Cluster, prices) -> None:
    items = trading_items()
    replay = ResilientReplay(cluster.endpoint, retried_codes=(*RETRIED_CODES,
                                                               "shard_unavailable"))
    faults: list[asyncio.Task] = []

    def move_shard_0() -> None:
        cluster.kill_shard(0)
        # The dead host's address goes to the new one, as a rescheduled pod keeps its name.
        new_host = network.replace_host("shard0", "shard0-moved")
        cluster.shards[0] = cluster.start_shard(0, new_host)

    async def on_progress(done: int) -> None:
        if done == len(items) // 3:
            faults.append(asyncio.create_task(asyncio.to_thread(move_shard_0)))

    async def scenario() -> None:
        await replay.run(items, on_progress)
        await asyncio.gather(*faults)

    cluster.on_client(scenario)

    assert faults and "shard0-moved" in network.hosts
    assert any(o.attempts > 1 for (u, _), o in replay.outcomes.items()
               if u and shard_of(u, cluster.count) == 0), "the kill was not felt"
    audit_run(cluster, replay, items, prices)


def test_a_second_process_for_a_served_shard_is_fenced(network, cluster: Cluster) -> None:
    spare = network.add_host("spare")
    second = subprocess.run(
        ["ip", "netns", "exec", spare.namespace,
         *shard_args(spare, 0, cluster.count, cluster.storage, cluster.secret, cluster.quotes,
                     cluster.redis_url, NO_SWEEP)],
        capture_output=True, text=True, timeout=60)
    assert second.returncode == 75, second.stderr
    assert "shard 0" in second.stderr

    async def shard_0_still_serves() -> bool:
        user = next(f"u{n}" for n in range(100) if shard_of(f"u{n}", cluster.count) == 0)
        async with await cluster.operator() as op:
            return (await op.send(f"ADD,{user},10.00")).ok

    assert cluster.on_client(shard_0_still_serves)


def probe(cluster: Cluster, secret: Path, index: int = 0) -> subprocess.CompletedProcess:
    address = f"{cluster.shard_hosts[index].address}:{SHARD_PORT}"
    return subprocess.run(
        ["ip", "netns", "exec", cluster.client.namespace, sys.executable, "-m", "daytrade",
         "shard-probe", address, "--cluster-secret", str(secret), "--index", str(index),
         "--of", str(cluster.count), "--timeout", "10"],
        capture_output=True, text=True, timeout=60)


def test_a_wrong_cluster_secret_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    wrong = probe(cluster, write_secret(tmp_path / "wrong.secret"))
    assert wrong.returncode == 1
    assert "secret" in (wrong.stdout + wrong.stderr).lower()
    right = probe(cluster, cluster.secret)
    assert right.returncode == 0, right.stdout + right.stderr
