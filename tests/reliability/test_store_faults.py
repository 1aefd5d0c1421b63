"""server/store/faults.py: the fault-injecting store the dependency battery runs the system on."""

from __future__ import annotations

import time

import pytest

from server.shards.account import Account
from server.shards.audit_events import TxRecord
from server.store.factory import open_store
from server.store.faults import FaultyStore, StoreFault, StoreFaults, parse_faults
from server.store.port import Batch
from server.store.sqlite import SqliteStore


def batch(user: str, cash: int, version: int) -> Batch:
    doc = Account(user, cash=cash, last_txn=version, version=version).to_doc()
    return Batch([doc], [(user, version - 1, TxRecord(version, 0, "add", None, 0, None, 100))])


@pytest.mark.parametrize(("spec", "faults"), [
    ("slow:0.5", StoreFaults(0.5, 0)), ("fail_every:7", StoreFaults(0.0, 7)),
    ("slow:0.1,fail_every:3", StoreFaults(0.1, 3)), ("", StoreFaults())])
def test_parse_faults_reads_the_env_syntax(spec, faults):
    assert parse_faults(spec) == faults


@pytest.mark.parametrize("spec", ["slow:-1", "slow:nan", "fail_every:0", "explode:1", "slow"])
def test_parse_faults_refuses_nonsense(spec):
    with pytest.raises(ValueError):
        parse_faults(spec)


def test_every_nth_commit_fails_before_writing_anything(tmp_path):
    store = FaultyStore(SqliteStore(str(tmp_path / "s.db")), StoreFaults(fail_every=2))
    store.commit_batch(batch("ann", 100, 1))
    with pytest.raises(StoreFault):
        store.commit_batch(batch("ann", 200, 2))
    assert store.load_account("ann").cash == 100
    store.commit_batch(batch("ann", 300, 3))
    assert store.load_account("ann").cash == 300
    store.close()


def test_a_slow_store_sleeps_before_each_commit(tmp_path):
    store = FaultyStore(SqliteStore(str(tmp_path / "s.db")), StoreFaults(slow_s=0.2))
    started = time.monotonic()
    store.commit_batch(batch("bo", 100, 1))
    assert time.monotonic() - started >= 0.2
    store.close()


def test_open_store_wraps_only_when_the_env_asks(tmp_path, monkeypatch):
    monkeypatch.delenv("DAYTRADE_STORE_FAULTS", raising=False)
    plain = open_store(str(tmp_path / "a.db"))
    assert isinstance(plain, SqliteStore)
    plain.close()
    monkeypatch.setenv("DAYTRADE_STORE_FAULTS", "fail_every:1")
    faulty = open_store(str(tmp_path / "b.db"))
    assert isinstance(faulty, FaultyStore)
    with pytest.raises(StoreFault):
        faulty.commit_batch(batch("cy", 1, 1))
    faulty.close()
