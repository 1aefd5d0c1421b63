"""The all-users DUMPLOG in worker processes: the same bytes as the single-process path, its
temporary files removed and its workers stopped however it ends, and a clear error when a
worker dies."""

from __future__ import annotations

import multiprocessing
import random
from pathlib import Path
from typing import Any

import pytest

from server.audit import parallel_dump
from server.audit.dumpfile import dump_events
from server.audit.merge import merged_events
from server.audit.parallel_dump import DumpWorkerError, dump_all_users
from server.audit.validate import validate_log
from server.shards.audit_events import (
    ACCOUNT_TRANSACTION,
    ERROR_EVENT,
    QUOTE_SERVER,
    SYSTEM_EVENT,
    USER_COMMAND,
    AuditEvent,
)
from server.store import codec
from server.store.codec import CorruptRecord
from server.store.factory import open_journal
from server.store.sqlite_journal import SqliteJournal

T0 = 1167631200000
KEPT_RUN = Path("/tmp/daytrade-bench-q8u5bi60/data")  # a real final_2019 run's journals


class ListJournal:
    """A journal's read side over records in memory (`max_txn` as the store keeps it)."""

    def __init__(self, records: list[bytes], fail_after: int | None = None,
                 max_txn: int | None = None) -> None:
        self._records = records
        self._fail_after = fail_after
        self._max_txn = max_txn
        self.closed = False

    def max_txn(self) -> int:
        if self._max_txn is not None:
            return self._max_txn
        return max((e[1] for data in self._records for e in codec.decode_event_rows(data)),
                   default=0)

    def records(self, after_seq: int = 0):
        for seq, data in enumerate(self._records, 1):
            if self._fail_after is not None and seq > self._fail_after:
                raise OSError("journal unreadable")
            yield seq, data

    def close(self) -> None:
        self.closed = True


def _event(rng: random.Random, txn: int, shard: int) -> AuditEvent:
    """Every kind, users and no user, text that needs escaping, and keys that tie across
    shards (only the arrival order tells those apart)."""
    user = rng.choice(["alice", "bob", "c<&>d", None])
    kind = rng.choice([USER_COMMAND, ACCOUNT_TRANSACTION, QUOTE_SERVER, ERROR_EVENT,
                       SYSTEM_EVENT])
    seq = rng.choice([-2, -1, 1, 2]) if user is None else rng.randint(1, 3)
    server = rng.choice(["gateway", f"shard-{shard}", "shard-x"])
    if kind == QUOTE_SERVER:
        return AuditEvent(kind, txn, seq, T0 + txn, server, user or "zed", symbol="ABC",
                          price=rng.randint(0, 10**6), quote_time=T0, cryptokey=f"k{shard}\x01")
    if kind == ACCOUNT_TRANSACTION:
        return AuditEvent(kind, txn, seq, T0 + txn, server, user or "zed",
                          funds=rng.randint(-500, 10**7), action=rng.choice(["add", "remove"]))
    return AuditEvent(kind, txn, seq, T0 + shard, server, user, command="BUY", symbol="XYZ",
                      funds=rng.choice([None, 1234]), filename=rng.choice([None, "f\u00e9.xml"]),
                      message=f"shard {shard} says <{txn}>" if kind == ERROR_EVENT else None)


def _journals(seed: int, shards: int = 2, records: int = 60, per_record: int = 40,
              txns: int = 3000) -> list[list[bytes]]:
    """Records whose events spread over the whole txn range, as a workload's users do."""
    rng = random.Random(seed)
    return [[codec.encode_record([], [_event(rng, rng.randint(1, txns), shard)
                                      for _ in range(rng.randint(0, per_record))])
             for _ in range(records)] for shard in range(shards)]


def _single(journals: list[Any], dump_dir: Path) -> bytes:
    streams = [(codec.decode_event_rows(data) for _, data in j.records()) for j in journals]
    return dump_events(merged_events(streams), dump_dir, "single.xml").path.read_bytes()


def _only(dump_dir: Path, *names: str) -> None:
    assert sorted(p.name for p in dump_dir.iterdir()) == sorted(names)


@pytest.mark.parametrize(("seed", "shards", "workers", "run_size"), [
    (1, 2, 2, 200_000),
    (2, 3, 2, 20),  # buckets above run_size: dealt again inside the workers
    (3, 1, 3, 1_000),  # more render workers than shards
])
def test_the_bytes_are_the_single_process_paths(tmp_path, seed, shards, workers, run_size):
    journals = [ListJournal(r) for r in _journals(seed, shards)]
    expected = _single(journals, tmp_path / "single")
    result = dump_all_users(journals, tmp_path / "dumps", "all.xml", workers=workers,
                            run_size=run_size, min_txns=0)
    assert result.path.read_bytes() == expected
    assert result.events == expected.count(b"\n\t</")
    assert result.replaced is False
    _only(tmp_path / "dumps", "all.xml")
    assert validate_log(result.path) == []


def test_ties_across_shards_keep_the_shard_order(tmp_path, monkeypatch):
    # Identical sort keys in both shards and in many buckets: only a stable sort of shard 0's
    # events then shard 1's tells them apart (by their timestamps).
    monkeypatch.setattr(parallel_dump, "BUCKETS", 4)
    records = [[codec.encode_record([], [
        AuditEvent(USER_COMMAND, txn, 1, T0 + 1000 * shard + r, "gateway", "alice", "ADD")
        for txn in range(1, 200, 7)]) for r in range(3)] for shard in range(2)]
    journals = [ListJournal(r) for r in reversed(records)]
    expected = _single(journals, tmp_path / "single")
    result = dump_all_users(journals, tmp_path / "dumps", "ties.xml", min_txns=0)
    assert result.path.read_bytes() == expected


def test_a_slice_of_a_real_final_2019_run(tmp_path):
    if not (KEPT_RUN / "shard-1.journal.sqlite").exists():
        pytest.skip("the kept final_2019 data dir is not on this machine")
    journals = []
    for shard in range(2):
        journal = open_journal(str(KEPT_RUN), shard)
        try:
            records = [data for _, (_, data) in zip(range(40), journal.records())]
        finally:
            journal.close()
        journals.append(ListJournal(records))
    expected = _single(journals, tmp_path / "single")
    result = dump_all_users(journals, tmp_path / "dumps", "slice.xml", min_txns=0)
    assert result.events > 10_000
    assert result.path.read_bytes() == expected


def test_sqlite_journals_and_the_replaced_flag(tmp_path):
    for shard, records in enumerate(_journals(4)):
        journal = SqliteJournal(tmp_path, shard)
        for seq, data in enumerate(records, 1):
            journal.append(seq, 3000, data)
        journal.close()
    journals = [SqliteJournal(tmp_path, shard) for shard in range(2)]
    try:
        expected = _single(journals, tmp_path / "single")
        (tmp_path / "dumps").mkdir()
        (tmp_path / "dumps" / "log.xml").write_text("old")
        result = dump_all_users(journals, tmp_path / "dumps", "../log.xml", min_txns=0)
    finally:
        for journal in journals:
            journal.close()
    assert result.replaced is True
    assert result.path == tmp_path / "dumps" / "log.xml"
    assert result.path.read_bytes() == expected
    assert oct(result.path.stat().st_mode & 0o777) == "0o600"
    _only(tmp_path / "dumps", "log.xml")


def test_empty_journals_give_an_empty_log(tmp_path):
    journals = [ListJournal([]), ListJournal([codec.encode_record([], [])])]
    result = dump_all_users(journals, tmp_path, "empty.xml", min_txns=0)
    assert result.events == 0
    assert result.path.read_bytes() == b'<?xml version="1.0"?>\n<log>\n</log>\n'
    _only(tmp_path, "empty.xml")


def test_a_small_log_starts_no_worker(tmp_path, monkeypatch):
    def no_workers(*args: Any) -> None:
        raise AssertionError("a worker was started for a small log")

    monkeypatch.setattr(parallel_dump, "_Worker", no_workers)
    journals = [ListJournal(r) for r in _journals(5)]  # txns up to 3000
    expected = _single(journals, tmp_path / "single")
    result = dump_all_users(journals, tmp_path / "dumps", "small.xml")
    assert result.path.read_bytes() == expected


def _crash_in(task: str) -> str:
    """A worker boot line that kills the worker with SIGKILL when it gets `task`."""
    name = {"deal": "_deal_records", "render": "_render_bucket"}[task]
    return ("import os, signal, server.audit.parallel_dump as p; "
            f"p.{name} = lambda *a: os.kill(os.getpid(), signal.SIGKILL); p._worker_main()")


@pytest.mark.parametrize("task", ["deal", "render"])
def test_a_dead_worker_fails_the_dump_clearly_and_leaves_nothing(tmp_path, monkeypatch, task):
    monkeypatch.setattr(parallel_dump, "_BOOT", _crash_in(task))
    (tmp_path / "crash.xml").write_text("the previous dump")
    journals = [ListJournal(r) for r in _journals(6)]
    with pytest.raises(DumpWorkerError, match=r"DUMPLOG worker \S+ \(pid \d+\) died "
                                              r"\(killed by signal 9\)"):
        dump_all_users(journals, tmp_path, "crash.xml", min_txns=0)
    assert (tmp_path / "crash.xml").read_text() == "the previous dump"
    _only(tmp_path, "crash.xml")


def test_a_worker_that_cannot_start_says_what_it_printed(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel_dump, "_BOOT", "raise SystemExit('no worker today')")
    with pytest.raises(DumpWorkerError, match=r"\(exit status 1\): no worker today"):
        dump_all_users([ListJournal(r) for r in _journals(7)], tmp_path, "x.xml", min_txns=0)
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_record_is_raised_as_itself_with_the_workers_traceback(tmp_path):
    records = _journals(8)
    records[1][5] = records[1][5][:-3] + b"bad"
    with pytest.raises(CorruptRecord) as raised:
        dump_all_users([ListJournal(r, max_txn=3000) for r in records], tmp_path, "x.xml",
                       min_txns=0)
    assert any("in DUMPLOG worker shard-1" in note for note in raised.value.__notes__)
    assert list(tmp_path.iterdir()) == []


def test_a_journal_that_fails_to_read_fails_the_dump(tmp_path):
    records = _journals(9)
    journals = [ListJournal(records[0]), ListJournal(records[1], fail_after=10)]
    with pytest.raises(OSError, match="journal unreadable"):
        dump_all_users(journals, tmp_path, "x.xml", min_txns=0)
    assert list(tmp_path.iterdir()) == []


def _dump_in_a_daemon(data_dir: str, dump_dir: str, queue: Any) -> None:
    try:
        journals = [SqliteJournal(data_dir, shard) for shard in range(2)]
        queue.put(dump_all_users(journals, Path(dump_dir), "daemon.xml", min_txns=0).events)
    except BaseException as error:
        queue.put(repr(error))


def test_it_runs_in_a_daemonic_process_as_a_shard_worker_is(tmp_path):
    # The gateway starts shards as daemonic multiprocessing children, which may not start
    # multiprocessing children of their own: the workers must not be those.
    for shard, records in enumerate(_journals(10)):
        journal = SqliteJournal(tmp_path, shard)
        for seq, data in enumerate(records, 1):
            journal.append(seq, 3000, data)
        journal.close()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_dump_in_a_daemon, daemon=True,
                          args=(str(tmp_path), str(tmp_path / "dumps"), queue))
    process.start()
    outcome = queue.get(timeout=60)
    process.join(10)
    journals = [SqliteJournal(tmp_path, shard) for shard in range(2)]
    try:
        expected = _single(journals, tmp_path / "single")
    finally:
        for journal in journals:
            journal.close()
    assert outcome == expected.count(b"\n\t</")
    assert (tmp_path / "dumps" / "daemon.xml").read_bytes() == expected



@pytest.mark.e2e
def test_an_in_reply_dump_counts_each_event_once(tmp_path):
    # A real server: the dump runs in its shard process's thread (work() in service.py).
    from tests.support.lines import LineClient
    from tests.support.system import RunningSystem

    with RunningSystem(tmp_path / "data", prices={"ABC": 1000}) as system, \
            LineClient(system.host, system.port) as op:
        assert op.ask(f"AUTH,{system.token}")["ok"]
        assert op.ask("ADD,alice,10.00")["ok"]
        assert op.ask("ADD,alice,5.00")["ok"]
        result = op.ask("DUMPLOG,alice,-")["result"]
        everyone = op.ask("DUMPLOG,all.xml")["result"]
    # 2 ADDs, their 2 account transactions and the DUMPLOG command itself
    assert result["events"] == result["xml"].count("\n\t</") == 5
    assert everyone["events"] == Path(everyone["path"]).read_bytes().count(b"\n\t</")
