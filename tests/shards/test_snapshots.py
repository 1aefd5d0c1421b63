"""Snapshots taken a few accounts per slice while the shard goes on: every account is
copied as of the snapshot's journal seq, an account about to change is copied first, and a
snapshot is written only once its record is durable."""

from __future__ import annotations

import zlib

import orjson
from twisted.internet.task import Clock

from server.shards.engine import Engine, summary
from server.shards.snapshots import SNAPSHOT_SLICE, SNAPSHOT_SLICE_GAP, SnapshotTaker
from server.store import codec
from server.store.journal_port import SnapshotAccount, TxChunk
from server.store.sqlite_journal import SqliteJournal
from tests.shards.shard_harness import Shard, recovered

USERS = 3 * SNAPSHOT_SLICE


def _adds(first_txn: int = 1, cents: str = "1.00") -> list[str]:
    return [f"[{first_txn + i}] ADD,user{i},{cents}" for i in range(USERS)]


def _snapshot_doc(tmp_path, user: str):
    journal = SqliteJournal(tmp_path, 0)
    try:
        snapshot = journal.load_snapshot()
        (loaded,) = [a for a in snapshot.accounts if a.user == user]
        return snapshot.seq, codec.decode_account(loaded.doc, loaded.chunks)
    finally:
        journal.close()


def test_an_account_that_changes_during_the_capture_is_snapshotted_as_of_the_snapshots_seq(
        tmp_path):
    shard = Shard(tmp_path, snapshot_every=1)
    shard.send(*_adds())
    shard.service.flush()  # record 1 appended; its snapshot begun, no account copied yet
    shard.send(f"[{USERS + 1}] ADD,user{USERS - 1},5.00")  # changes before its turn comes
    shard.turn()
    seq, acct = _snapshot_doc(tmp_path, f"user{USERS - 1}")
    assert (seq, acct.cash) == (1, 100)
    live = {u: summary(a) for u, a in shard.service.engine.accounts.items()}
    shard.journal.close()  # a kill: no final snapshot
    assert {u: summary(a) for u, a in recovered(tmp_path).accounts.items()} == live


def test_a_trigger_firing_during_the_capture_is_snapshotted_after_it_not_in_it(tmp_path):
    shard = Shard(tmp_path, snapshot_every=1)
    shard.send("[1] ADD,alice,100.00", "[2] SET_BUY_AMOUNT,alice,ABC,50.00",
               "[3] SET_BUY_TRIGGER,alice,ABC,9.00", *_adds(first_txn=4))
    shard.service.flush()
    shard.quotes.prices["ABC"] = 850
    shard.service.sweep()
    shard.give_txns(900)  # fires on alice's account before the capture reached it
    shard.turn()
    seq, acct = _snapshot_doc(tmp_path, "alice")
    assert seq == 1 and acct.holdings.get("ABC", 0) == 0
    live = summary(shard.service.engine.accounts["alice"])
    assert live["holdings"]["ABC"] == 5
    shard.journal.close()
    assert summary(recovered(tmp_path).accounts["alice"]) == live


def test_an_expiry_due_during_the_capture_runs_once_it_is_done(tmp_path):
    # The second record (zed's two inputs, then USERS) makes the snapshot; the third does not.
    shard = Shard(tmp_path, snapshot_every=USERS + 2, snapshot_interval=1000.0)
    shard.send("[1] ADD,zed,100.00", "[2] BUY,zed,ABC,50.00")
    shard.quotes.answer("ABC", 1_000, shard.now())
    shard.turn()
    shard.turn(59.95)
    shard.send(*_adds(first_txn=3))
    shard.service.flush()  # a snapshot begins 50 ms before zed's BUY runs out
    shard.turn(0.1)  # the BUY runs out after the first turn's accounts (zed's is the last)
    shard.turn()
    seq, acct = _snapshot_doc(tmp_path, "zed")
    assert seq == 2 and len(acct.pending_buys) == 1  # copied before the expiry changed it
    assert [e["event"] for e in shard.pushed()] == ["pending_expired"]
    assert shard.service.engine.accounts["zed"].cash == 10_000
    shard.close()


def test_a_kill_at_any_turn_of_the_capture_recovers_the_live_state(tmp_path):
    for turns in range(0, 5):
        data = tmp_path / f"kill-after-{turns}"
        data.mkdir()
        shard = Shard(data, snapshot_every=1)
        shard.send(*_adds())
        shard.service.flush()
        for t in range(turns):
            shard.send(f"[{USERS + 1 + t}] ADD,user{(7 * t) % USERS},2.00")
            shard.clock.advance(0)
        shard.service.flush()
        live = {u: summary(a) for u, a in shard.service.engine.accounts.items()}
        shard.journal.close()
        assert {u: summary(a) for u, a in recovered(data).accounts.items()} == live, turns


def _taker(tmp_path, slice_gap=0.0):
    engine = Engine()
    for i in range(USERS):
        engine.open_account(f"user{i}", 0)
    journal = SqliteJournal(tmp_path, 0)
    clock = Clock()
    captured: list[bool] = []
    taker = SnapshotTaker(engine, journal, clock, submit=None,
                          on_captured=lambda: captured.append(True), slice_gap=slice_gap)
    taker.touched.update(engine.accounts)
    return taker, journal, clock, captured


def test_a_few_accounts_are_captured_per_turn_and_the_shard_is_told_when_all_are(tmp_path):
    taker, journal, clock, captured = _taker(tmp_path)
    taker.begin(1)
    assert taker.capturing
    clock.advance(0)
    assert not taker.capturing and captured == [True]
    journal.close()


def test_slices_after_the_first_wait_for_the_gap_so_the_reactor_sleeps_in_between(tmp_path):
    taker, journal, clock, captured = _taker(tmp_path, slice_gap=SNAPSHOT_SLICE_GAP)
    taker.begin(1)
    clock.advance(0)
    assert taker.capturing  # one slice taken, two to go
    clock.advance(SNAPSHOT_SLICE_GAP / 2)
    assert taker.capturing
    clock.advance(SNAPSHOT_SLICE_GAP / 2)
    clock.advance(SNAPSHOT_SLICE_GAP)
    assert not taker.capturing and captured == [True]
    journal.close()


def test_a_snapshot_is_written_only_once_its_record_is_durable(tmp_path):
    taker, journal, clock, _ = _taker(tmp_path)
    taker.begin(7)
    clock.advance(0)
    assert journal.load_snapshot() is None and taker.busy
    taker.durable(7)
    assert journal.load_snapshot().seq == 7 and not taker.busy
    assert len(journal.load_snapshot().accounts) == USERS
    journal.close()


def test_an_abandoned_snapshot_puts_its_accounts_back_for_the_next_one(tmp_path):
    taker, journal, clock, _ = _taker(tmp_path)
    taker.begin(1)
    taker.abandon()
    assert not taker.busy and len(taker.touched) == USERS
    taker.write_now(1)
    assert len(journal.load_snapshot().accounts) == USERS
    journal.close()


def test_a_snapshot_stores_each_account_compressed(tmp_path):
    shard = Shard(tmp_path, snapshot_every=1)
    shard.send("[1] ADD,alice,100.00", "[2] DISPLAY_SUMMARY,alice")
    shard.service.flush()
    shard.turn()
    journal = SqliteJournal(tmp_path, 0)
    try:
        (loaded,) = journal.load_snapshot().accounts
    finally:
        journal.close()
    assert orjson.loads(zlib.decompress(loaded.doc))["user"] == "alice"


def test_a_snapshot_written_before_accounts_were_compressed_still_loads(tmp_path):
    shard = Shard(tmp_path)
    shard.send("[1] ADD,alice,100.00", "[2] SET_BUY_AMOUNT,alice,ABC,50.00",
               "[3] DISPLAY_SUMMARY,alice")
    shard.service.flush()
    acct = shard.service.engine.accounts["alice"]
    live = summary(acct)
    # What a shard of 2026-12-04 wrote: the account's JSON as it is.
    shard.journal.write_snapshot(
        shard.journal.last_seq(),
        [SnapshotAccount("alice", codec.account_json(codec.account_doc(acct)),
                         len(acct.transactions))],
        [TxChunk("alice", 0, codec.encode_tx_records(acct.transactions))])
    shard.journal.close()
    engine = recovered(tmp_path)
    assert summary(engine.accounts["alice"]) == live
    assert list(engine.accounts["alice"].recent) == list(acct.recent)
