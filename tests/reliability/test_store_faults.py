"""server/store/faults.py: the fault-injecting journal the dependency battery runs the system on."""

from __future__ import annotations

import pytest

from server.store.factory import open_journal
from server.store.faults import FaultyJournal, StoreFault, StoreFaults, parse_faults
from server.store.sqlite_journal import SqliteJournal


@pytest.mark.parametrize(("spec", "faults"), [
    ("slow:0.5", StoreFaults(0.5, 0)), ("fail_every:7", StoreFaults(0.0, 7)),
    ("slow:0.1,fail_every:3", StoreFaults(0.1, 3)), ("", StoreFaults())])
def test_parse_faults_reads_the_env_syntax(spec, faults):
    assert parse_faults(spec) == faults


@pytest.mark.parametrize("spec", ["slow:-1", "slow:nan", "fail_every:0", "explode:1", "slow"])
def test_parse_faults_refuses_nonsense(spec):
    with pytest.raises(ValueError):
        parse_faults(spec)


def test_every_nth_append_fails_before_writing_anything(tmp_path):
    journal = FaultyJournal(SqliteJournal(tmp_path, 0), StoreFaults(fail_every=2))
    journal.append(1, 1, b"one")
    with pytest.raises(StoreFault):
        journal.append(2, 2, b"two")
    assert journal.last_seq() == 1
    journal.append(2, 3, b"two again")
    assert list(journal.records()) == [(1, b"one"), (2, b"two again")]
    journal.close()


def test_a_slow_journal_sleeps_slow_s_before_each_append(tmp_path):
    inner = SqliteJournal(tmp_path, 0)
    slept: list[tuple[float, int]] = []  # (seconds, records written when the sleep began)
    journal = FaultyJournal(inner, StoreFaults(slow_s=0.2),
                            sleep=lambda s: slept.append((s, inner.last_seq())))
    journal.append(1, 1, b"one")
    journal.append(2, 2, b"two")
    assert slept == [(0.2, 0), (0.2, 1)]
    assert inner.last_seq() == 2
    journal.close()


def test_open_journal_wraps_only_when_the_env_asks(tmp_path, monkeypatch):
    monkeypatch.delenv("DAYTRADE_STORE_FAULTS", raising=False)
    plain = open_journal(str(tmp_path), 0)
    assert isinstance(plain, SqliteJournal)
    plain.close()
    monkeypatch.setenv("DAYTRADE_STORE_FAULTS", "fail_every:1")
    faulty = open_journal(str(tmp_path), 1)
    assert isinstance(faulty, FaultyJournal)
    with pytest.raises(StoreFault):
        faulty.append(1, 1, b"x")
    faulty.close()
