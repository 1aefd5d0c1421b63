"""`daytrade up --shard K=HOST:PORT` with two `daytrade shard` processes on 127.0.0.1: the same
results as the pure engine, clear errors for the users of a killed shard while the others carry
on, service again once it is back, a second process for a shard index fenced, and the probe."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from server.audit.parallel_dump import dump_all_users
from server.audit.validate import validate_log
from server.shards.service import EXIT_FENCED
from server.store.sqlite_journal import SqliteJournal
from tests.server.conftest import workload_prices
from tests.server.journal_helpers import operator, user_of_shard, wait_until
from tests.server.test_end_to_end import engine_replay, replay_through_server
from tests.support.certs import self_signed_certificate
from tests.support.oracle import comparable
from tests.support.shards import QuoteProcess, ShardProcess
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e


class RemoteCluster:
    """A quote simulator, two shard processes and a gateway connecting to them."""

    def __init__(self, tmp_path, prices: dict[str, int], *, shard_wait: float = 3.0,
                 cluster_file: bool = False, shared_volume: bool = False,
                 shard_args: list[str] | None = None,
                 gateway_args: list[str] | None = None) -> None:
        self.tmp_path = tmp_path
        self.secret = tmp_path / "cluster.secret"
        self.secret.write_text(secrets.token_hex(32))
        self.quotes = QuoteProcess(tmp_path, prices)
        # A shared volume: every shard's journal files in one directory (as on a network
        # volume); otherwise each shard has a directory of its own (as on its own host).
        volume = tmp_path / "volume" if shared_volume else None
        self.shards = [ShardProcess(tmp_path, i, 2, self.secret, self.quotes.address,
                                    data_dir=volume, extra_args=shard_args).start()
                       for i in range(2)]
        if cluster_file:
            spec = tmp_path / "cluster.json"
            spec.write_text(json.dumps({"shards": 2,
                                        "addresses": [s.address for s in self.shards]}))
            where = ["--cluster", str(spec)]
        else:
            where = [arg for s in self.shards for arg in ("--shard", f"{s.index}={s.address}")]
        self.gateway = RunningSystem(
            tmp_path / "gateway", prices=prices, extra_args=[
                *where, "--cluster-secret", str(self.secret), "--shard-wait", str(shard_wait),
                *(gateway_args or [])])
        self.gateway.args.remove("--shards")  # the addresses say how many
        self.gateway.args.remove("2")
        self.gateway.start()

    def stop(self) -> None:
        self.gateway.stop()
        for shard in self.shards:
            shard.stop()
        self.quotes.stop()


@pytest.fixture
def cluster_factory(tmp_path):
    made: list[RemoteCluster] = []

    def make(prices: dict[str, int] | None = None, **kwargs) -> RemoteCluster:
        cluster = RemoteCluster(tmp_path, prices or {"ABC": 1_000}, **kwargs)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


def test_ten_user_workload_through_remote_shards_matches_the_pure_engine(cluster_factory):
    prices = workload_prices("10user.txt")
    cluster = cluster_factory(prices, cluster_file=True, shared_volume=True)
    system = cluster.gateway
    trading, replies, dump_replies, summaries = asyncio.run(
        replay_through_server(system.host, system.port, system.token, "10user.txt"))

    assert len(replies) == len(trading)
    for item, reply in zip(trading, replies):
        assert reply.txn == item.txn and reply.cmd == item.command, (item, reply)
    # The all-users DUMPLOG, by shard 0 from every journal on the shared volume.
    assert len(dump_replies) == 1 and dump_replies[0].ok, dump_replies
    assert validate_log(dump_replies[0].result["path"]) == []
    oracle = engine_replay("10user.txt", prices)
    for user, result in summaries.items():
        assert comparable(result) == comparable(oracle.summary(user)), user
    # Each user's log is dumped by the user's own shard, from its own journal.
    with operator(system) as op:
        for user in sorted(summaries)[:3]:
            reply = op.ask(f"DUMPLOG,{user},{user}.xml")
            assert reply["ok"], reply
            assert validate_log(reply["result"]["path"]) == []


def test_an_all_users_dumplog_with_shards_on_volumes_of_their_own_is_written_by_the_gateway(
        cluster_factory):
    cluster = cluster_factory()
    with operator(cluster.gateway) as op:
        for i in range(40):  # users on both shards
            assert op.ask(f"ADD,user{i},{i + 1}.00")["ok"]
        reply = op.ask("DUMPLOG,all.xml")
    assert reply["ok"], reply
    path = Path(reply["result"]["path"])
    assert path.parent == cluster.gateway.data_dir.resolve() / "dumps"
    assert validate_log(path) == []
    # The same bytes as the dump a shard writes when it can read every journal itself.
    for shard in cluster.shards:
        shard.stop()
    journals = [SqliteJournal(shard.data_dir, shard.index) for shard in cluster.shards]
    try:
        local = dump_all_users(journals, cluster.tmp_path, "local.xml")
    finally:
        for journal in journals:
            journal.close()
    assert local.events == reply["result"]["events"] == 81  # 40 ADDs audited twice, DUMPLOG
    assert path.read_bytes() == local.path.read_bytes()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".remote-dump")]


def test_a_killed_shards_users_get_clear_errors_others_carry_on_and_it_serves_again(
        cluster_factory):
    cluster = cluster_factory(shard_wait=1.0)
    ann, bob = user_of_shard(0, 2, "ann"), user_of_shard(1, 2, "bob")
    with operator(cluster.gateway) as op:
        assert op.ask(f"ADD,{ann},10.00")["ok"]
        assert op.ask(f"ADD,{bob},10.00")["ok"]
        port = cluster.shards[1].port
        cluster.shards[1].kill()

        lost = op.ask(f"ADD,{bob},1.00", timeout=10)
        assert not lost["ok"] and lost["error"]["code"] in ("shard_unavailable", "internal")
        unavailable = op.ask(f"ADD,{bob},1.00", timeout=10)
        assert unavailable["error"]["code"] == "shard_unavailable", unavailable
        assert op.ask(f"ADD,{ann},1.00")["result"]["cash"] == "11.00"
        down = {s["shard"]: s for s in op.ask("STATS")["result"]["shards"]}
        assert down[1]["state"] in ("down", "connecting") and down[0]["state"] == "connected"
        assert down[0]["address"] == cluster.shards[0].address

        cluster.shards[1] = ShardProcess(cluster.tmp_path, 1, 2, cluster.secret,
                                         cluster.quotes.address, port=port).start()
        wait_until(lambda: op.ask("STATS")["result"]["shards"][1]["state"] == "connected",
                   15, "shard 1 connected again")
        back = op.ask(f"ADD,{bob},1.00")
    assert back["ok"] and back["result"]["cash"] == "11.00", back  # nothing applied meanwhile


def test_a_second_process_for_the_same_shard_index_is_fenced(cluster_factory, tmp_path):
    cluster = cluster_factory()
    running = cluster.shards[0]
    second = ShardProcess(tmp_path, 0, 2, cluster.secret, cluster.quotes.address,
                          data_dir=running.data_dir)
    result = second.run_to_exit()
    assert result.returncode == EXIT_FENCED
    assert "another live process serves shard 0" in result.stderr
    with operator(cluster.gateway) as op:  # the first one still serves
        assert op.ask(f"ADD,{user_of_shard(0, 2, 'ann')},1.00")["ok"]


def test_the_probe_passes_with_the_secret_and_fails_without_it(cluster_factory, tmp_path):
    cluster = cluster_factory()
    shard = cluster.shards[1]

    def probe(secret_file, index: int = 1) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "daytrade", "shard-probe", shard.address, "--cluster-secret",
             str(secret_file), "--index", str(index), "--of", "2", "--timeout", "10"],
            capture_output=True, text=True, timeout=60)

    ok = probe(cluster.secret)
    assert ok.returncode == 0 and "rtt" in ok.stdout, ok.stderr
    wrong = tmp_path / "wrong.secret"
    wrong.write_text(secrets.token_hex(32))
    refused = probe(wrong)
    assert refused.returncode == 1 and "wrong cluster secret" in refused.stderr
    mismatch = probe(cluster.secret, index=0)
    assert mismatch.returncode == 1 and "shard 1 of 2" in mismatch.stderr
    with operator(cluster.gateway) as op:  # probes never displace the gateway
        assert op.ask(f"ADD,{user_of_shard(1, 2, 'bob')},1.00")["ok"]


def test_shard_flags_that_do_not_name_every_shard_are_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(secrets.token_hex(32))
    result = subprocess.run(
        [sys.executable, "-m", "daytrade", "up", "--data-dir", str(tmp_path / "d"), "--shard",
         "0=127.0.0.1:4100", "--shard", "2=127.0.0.1:4102", "--cluster-secret", str(secret)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "missing: 1" in result.stderr


def test_remote_shards_need_a_cluster_secret(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "daytrade", "up", "--data-dir", str(tmp_path / "d"), "--shard",
         "0=127.0.0.1:4100"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--cluster-secret" in result.stderr



def test_a_restarted_gateway_gives_txns_above_every_txn_the_shards_journaled(cluster_factory):
    cluster = cluster_factory()
    bob = user_of_shard(1, 2, "bob")
    with operator(cluster.gateway) as op:
        assert op.ask(f"[5000] ADD,{bob},1.00")["ok"]
    cluster.gateway.stop()
    cluster.gateway.start()  # a new gateway process, on a data dir of its own that has no txns
    with operator(cluster.gateway) as op:
        reply = op.ask(f"ADD,{user_of_shard(0, 2, 'ann')},1.00")
    assert reply["ok"] and reply["txn"] > 5000, reply


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    """A throwaway self-signed certificate for 127.0.0.1."""
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    return str(cert), str(key)


def test_the_links_to_the_shards_may_run_over_tls(cluster_factory, certificate):
    cert, key = certificate
    cluster = cluster_factory(shard_args=["--tls-cert", cert, "--tls-key", key],
                              gateway_args=["--shard-tls-ca", cert])
    with operator(cluster.gateway) as op:
        assert op.ask(f"ADD,{user_of_shard(0, 2, 'ann')},1.00")["ok"]
        assert op.ask(f"ADD,{user_of_shard(1, 2, 'bob')},1.00")["ok"]
    shard = cluster.shards[0]
    probe = subprocess.run(
        [sys.executable, "-m", "daytrade", "shard-probe", shard.address, "--cluster-secret",
         str(cluster.secret), "--index", "0", "--of", "2", "--tls-ca", cert],
        capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    plain = subprocess.run(
        [sys.executable, "-m", "daytrade", "shard-probe", shard.address, "--cluster-secret",
         str(cluster.secret), "--index", "0", "--of", "2", "--timeout", "3"],
        capture_output=True, text=True, timeout=60)
    assert plain.returncode == 1  # plaintext to a TLS shard gets no answer
