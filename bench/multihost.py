"""Figures of daytrade with its shards on separate hosts (network namespaces on this machine).

    python -m bench.multihost [--workload final_2019_by_user.txt] [--runs 2] [--out DIR]

1. Throughput: the workload with 2 shards on hosts of their own against 2 local shards
   (`daytrade bench --embedded`), back to back in ABBA order, `--runs` of each; the ratio; both
   with --validate (the shards' journals are on one directory, standing in for shared storage,
   so a shard can write the all-users DUMPLOG).
2. From a shard host's cable plugged back to its users served again.
3. From a shard's SIGKILL to its users served again by a shard started on another host.
Needs root and `ip`. Benchmarks, not tests: run them on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cluster import Cluster
from bench.netns import Network, check_available, remove_leftovers
from bench.workload import read_workload, shipped
from server.shards.service import shard_of

POLL_S = 0.01  # between two attempts to be served while waiting for a shard
WAIT_S = 60.0  # the longest any one wait for a shard may take
SHARD_LINK_DELAY_MS = 0.2


def bench_args(workload: str, out: Path, name: str) -> list[str]:
    return [sys.executable, "-m", "daytrade", "bench", workload, "--validate", "--no-progress",
            "--json", str(out / f"{name}.json"), "--dump-to", str(out / name)]


def local_run(workload: str, out: Path, name: str) -> dict[str, Any]:
    """`daytrade bench --embedded` with 2 shards on this host."""
    with open(out / f"{name}.log", "wb") as log:
        subprocess.run([*bench_args(workload, out, name), "--embedded", "--shards", "2",
                        "--quote-latency", "legacy"], check=False, stdout=log,
                       stderr=subprocess.STDOUT)
    return json.loads((out / f"{name}.json").read_text())


def remote_run(workload: str, out: Path, name: str) -> dict[str, Any]:
    """The same workload through 2 shards on hosts of their own, the bench on a client host."""
    network = Network()
    try:
        cluster = Cluster(network, out / f"{name}-hosts", {}, quotes_latency="legacy")
        # A shard's replies cross a 0.2 ms link, as in one data centre, where the kernel can.
        refused = [why for host in cluster.shard_hosts
                   if (why := host.delay(SHARD_LINK_DELAY_MS)) is not None]
        link_delay = (f"none (tc netem: {refused[0]})" if refused
                      else f"netem {SHARD_LINK_DELAY_MS} ms")
        token_file = cluster.gateway.data_dir / "operator.token"
        with open(out / f"{name}.log", "wb") as log:
            cluster.client.popen([*bench_args(workload, out, name), "--host",
                                  cluster.gateway.address, "--port", str(cluster.gateway.port),
                                  "--token-file", str(token_file)],
                                 stdout=log, stderr=subprocess.STDOUT).wait()
        cluster.stop_shards()
    finally:
        network.close()
    result = json.loads((out / f"{name}.json").read_text())
    result["link_delay"] = link_delay
    return result


async def served(cluster: Cluster, user: str) -> float:
    """Seconds until a DISPLAY_SUMMARY of `user` is answered ok (at most WAIT_S)."""
    started = time.monotonic()
    async with await cluster.operator() as op:
        while time.monotonic() - started < WAIT_S:
            try:
                reply = await op.send(f"DISPLAY_SUMMARY,{user}", timeout=WAIT_S)
            except TimeoutError:
                continue
            if reply.ok:
                return time.monotonic() - started
            await asyncio.sleep(POLL_S)
    raise TimeoutError(f"{user} not served within {WAIT_S} s")


async def unavailable(cluster: Cluster, user: str) -> None:
    """Until the gateway answers `user` shard_unavailable (it has noticed the cut)."""
    started = time.monotonic()
    async with await cluster.operator() as op:
        while time.monotonic() - started < WAIT_S:
            reply = await op.send(f"DISPLAY_SUMMARY,{user}", timeout=WAIT_S)
            if not reply.ok and str(reply.code) == "shard_unavailable":
                return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{user} still served {WAIT_S} s after the cut")


def recovery_times(out: Path, rounds: int) -> dict[str, list[float]]:
    """Seconds from a cable plugged back, and from a shard killed, to its users served."""
    network = Network()
    try:
        prices = {"ABC": 10_000}
        cluster = Cluster(network, out / "recovery-hosts", prices)
        user = next(f"user{n}" for n in range(100) if shard_of(f"user{n}", 2) == 0)
        items = [i for i in read_workload(shipped("10user.txt")) if i.command != "DUMPLOG"]

        async def fill() -> None:  # a journal to recover, and the user's account
            async with await cluster.operator() as op:
                await asyncio.gather(*(op.send(i.text) for i in items))
                assert (await op.send(f"ADD,{user},100.00")).ok

        cluster.on_client(fill)
        cable, moved = [], []
        for n in range(rounds):
            host = cluster.shard_hosts[0]
            host.set_link(False)
            cluster.on_client(lambda: unavailable(cluster, user))
            host.set_link(True)
            cable.append(cluster.on_client(lambda: served(cluster, user)))
            killed_at = time.monotonic()
            cluster.kill_shard(0)
            cluster.shard_hosts[0] = network.replace_host(host.name, f"shard0-{n}")
            cluster.shards[0] = cluster.start_shard(0, cluster.shard_hosts[0])
            started = time.monotonic() - killed_at
            moved.append(started + cluster.on_client(lambda: served(cluster, user)))
        return {"cable_back_to_served_s": cable, "killed_to_served_on_another_host_s": moved}
    finally:
        network.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.multihost", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="final_2019_by_user.txt")
    ap.add_argument("--runs", type=int, default=2, help="runs of each mode, alternated")
    ap.add_argument("--rounds", type=int, default=3, help="cable pulls and shard moves")
    ap.add_argument("--out", type=Path, default=None, help="where reports go (default: a "
                                                           "temporary directory)")
    args = ap.parse_args(argv)
    check_available()
    remove_leftovers()
    out = args.out or Path(tempfile.mkdtemp(prefix="multihost-"))
    out.mkdir(parents=True, exist_ok=True)
    # The recovery times first: they take a minute, the throughput runs many.
    figures: dict[str, Any] = recovery_times(out, args.rounds)
    print(json.dumps(figures), flush=True)
    figures["runs"] = []
    modes = [("local", local_run), ("remote", remote_run)]
    for n in range(args.runs):
        # ABBA: a machine that speeds up or slows down during the runs favours neither mode.
        for mode, run in (modes if n % 2 == 0 else modes[::-1]):
            started = time.strftime("%H:%M:%S UTC", time.gmtime())
            result = run(args.workload, out, f"{mode}-{n}")
            row = {"mode": mode, "started": started,
                   "commands_per_s": result.get("commands_per_s"),
                   "validation_ok": (result.get("validation") or {}).get("ok"),
                   "link_delay": result.get("link_delay", "none (local)")}
            figures["runs"].append(row)
            print(json.dumps(row), flush=True)
    local = [r["commands_per_s"] for r in figures["runs"] if r["mode"] == "local"]
    remote = [r["commands_per_s"] for r in figures["runs"] if r["mode"] == "remote"]
    if local:
        figures["ratio_remote_to_local"] = sum(remote) / sum(local)
    (out / "multihost.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"reports in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
