"""The shard at work, driven directly on a fake clock and a real SQLite journal: per-user order,
group commit, expiry at the gateway's stamp, the sweep's txns, snapshots and recovery."""

from __future__ import annotations

import pytest

from server.shards.engine import summary
from server.shards.service import EXIT_FENCED
from server.store import codec
from server.store.sqlite_journal import SqliteJournal
from tests.shards.shard_harness import Shard, recovered


@pytest.fixture
def shard(tmp_path):
    s = Shard(tmp_path)
    yield s
    s.close()


def test_replies_wait_for_the_append_of_their_batch(shard, tmp_path):
    (add,) = shard.send("[1] ADD,alice,100.00")
    assert shard.replies() == {}  # executed, not yet durable
    shard.turn()
    assert shard.replies()[add]["ok"]
    assert shard.journal.last_seq() == 1
    assert recovered(tmp_path).accounts["alice"].cash == 10_000


def test_one_batch_is_one_record_holding_its_inputs_and_events(shard):
    shard.send("[1] ADD,alice,100.00", "[2] ADD,bob,5.00", "[3] COMMIT_BUY,alice")
    shard.turn()
    ((seq, data),) = list(shard.journal.records())
    assert seq == 1
    assert [i[2] for i in codec.decode_inputs(data)] == [
        "[1] ADD,alice,100.00", "[2] ADD,bob,5.00", "[3] COMMIT_BUY,alice"]
    assert [e.kind for e in codec.decode_events(data)] == [
        "userCommand", "accountTransaction", "userCommand", "accountTransaction",
        "userCommand", "errorEvent"]
    assert shard.journal.max_txn() == 3


def test_session_lines_and_rejects_without_a_txn_are_answered_but_not_journaled(shard):
    bad, session = shard.send("ADD,alice,-5", "PING")
    shard.turn()
    replies = shard.replies()
    assert replies[bad]["error"]["code"] == "bad_argument"
    assert replies[session]["error"]["code"] == "bad_request"
    assert shard.journal.last_seq() == 0


def test_a_user_waiting_for_a_quote_does_not_hold_up_another_user(shard):
    shard.send("[1] ADD,alice,100.00", "[2] ADD,bob,100.00")
    shard.turn()
    buy, after = shard.send("[3] BUY,alice,ABC,50.00", "[4] ADD,alice,1.00")
    (bob,) = shard.send("[5] ADD,bob,1.00")
    shard.turn()
    replies = shard.replies()
    assert bob in replies and buy not in replies and after not in replies
    shard.quotes.answer("ABC", 1_000, shard.now())
    shard.turn()
    replies = shard.replies()
    assert replies[buy]["result"]["shares"] == 5
    assert replies[after]["result"]["cash"] == "51.00"  # ran after the BUY, in order


def test_a_failed_quote_answers_quote_unavailable_and_the_queue_moves_on(shard, tmp_path):
    shard.send("[1] ADD,alice,100.00")
    buy, after = shard.send("[2] BUY,alice,ABC,50.00", "[3] ADD,alice,1.00")
    shard.quotes.fail("ABC")
    shard.turn()
    replies = shard.replies()
    assert replies[buy]["error"]["code"] == "quote_unavailable"
    assert replies[after]["result"]["cash"] == "101.00"
    assert recovered(tmp_path).accounts["alice"].last_txn == 3


def test_a_pending_buy_expires_on_the_timer_and_is_pushed(shard, tmp_path):
    shard.send("[1] ADD,alice,100.00", "[2] BUY,alice,ABC,50.00")
    shard.quotes.answer("ABC", 1_000, shard.now())
    shard.turn()
    shard.turn(59.0)
    assert shard.pushed() == []
    shard.turn(1.5)
    shard.turn()
    (event,) = shard.pushed()
    assert event["event"] == "pending_expired" and event["cash"] == "100.00"
    assert recovered(tmp_path).accounts["alice"].cash == 10_000


def test_a_command_stamped_before_expiry_is_judged_at_its_stamp_after_a_slow_quote(shard):
    """BUY at t0; at t0 + 59.2 s a QUOTE whose answer takes 2.5 s, COMMIT_BUY right behind it:
    the gateway received the COMMIT_BUY inside the 60 s, so it commits the BUY."""
    shard.send("[1] ADD,alice,100.00", "[2] BUY,alice,ABC,50.00")
    shard.quotes.answer("ABC", 1_000, shard.now())
    shard.turn()
    shard.turn(59.2)
    quote, commit = shard.send("[3] QUOTE,alice,XYZ", "[4] COMMIT_BUY,alice")
    shard.turn(2.5)  # the expiry timer fires meanwhile
    assert shard.pushed() == []
    shard.quotes.answer("XYZ", 700, shard.now())
    shard.turn()
    replies = shard.replies()
    assert replies[quote]["ok"]
    assert replies[commit]["result"]["holding"] == 5
    assert shard.pushed() == []


def test_an_expiry_no_command_waits_on_happens_on_time_while_another_user_waits(shard):
    shard.send("[1] ADD,alice,100.00", "[2] BUY,alice,ABC,50.00", "[3] ADD,bob,100.00",
               "[4] BUY,bob,ABC,50.00")
    shard.quotes.answer("ABC", 1_000, shard.now())
    shard.turn()
    shard.turn(59.2)
    shard.send("[5] QUOTE,alice,XYZ")  # alice waits on a slow quote; bob waits on nothing
    shard.turn(1.0)
    shard.turn()
    assert [(e["event"], e["user"]) for e in shard.pushed()] == [("pending_expired", "bob")]
    shard.quotes.answer("XYZ", 700, shard.now())
    shard.turn()
    shard.turn()
    assert [(e["event"], e["user"]) for e in shard.pushed()] == [
        ("pending_expired", "bob"), ("pending_expired", "alice")]


def test_the_sweep_takes_its_txns_from_the_gateway_before_firing(shard, tmp_path):
    shard.send("[1] ADD,alice,100.00", "[2] SET_BUY_AMOUNT,alice,ABC,50.00",
               "[3] SET_BUY_TRIGGER,alice,ABC,10.00")
    shard.turn()
    shard.quotes.prices["ABC"] = 900
    shard.turn(2.0)
    ((_, _token, count),) = shard.txn_requests()
    assert count == 1 and shard.pushed() == []  # nothing fires before the txns are in
    shard.give_txns(500)
    shard.turn()
    (event,) = shard.pushed()
    assert (event["event"], event["shares"], event["txn"]) == ("trigger_fired", 5, 500)
    alice = recovered(tmp_path).accounts["alice"]
    assert alice.holdings["ABC"] == 5 and alice.cash == 10_000 - 4_500


def test_a_retried_txn_after_a_restart_is_replayed_from_the_journal(shard, tmp_path):
    shard.send("[1] ADD,alice,100.00")
    shard.turn()
    shard.close()
    fresh = Shard(tmp_path)  # a new process: state comes from the journal alone
    try:
        (retry,) = fresh.send("[1] ADD,alice,100.00")
        fresh.turn()
        reply = fresh.replies()[retry]
        assert reply["replayed"] is True and reply["result"]["cash"] == "100.00"
    finally:
        fresh.close()


def test_a_snapshot_is_taken_in_the_background_and_a_restart_replays_only_the_tail(tmp_path):
    shard = Shard(tmp_path, snapshot_interval=1.0)
    shard.send("[1] ADD,alice,100.00", "[2] ADD,bob,1.00")
    shard.turn()
    shard.turn(1.0)
    assert shard.journal.load_snapshot().seq == 1
    shard.send("[3] ADD,alice,2.00")
    shard.turn()
    shard.journal.close()  # a kill: no final snapshot
    fresh = Shard(tmp_path, clock=shard.clock)
    try:
        assert fresh.service.replayed == 1
        assert fresh.service.engine.accounts["alice"].cash == 10_200
        assert fresh.service.engine.accounts["bob"].cash == 100
    finally:
        fresh.close()


def test_a_snapshot_is_taken_once_the_journal_has_grown_by_snapshot_every_inputs(tmp_path):
    shard = Shard(tmp_path, snapshot_interval=1000.0, snapshot_every=3)
    try:
        shard.send("[1] ADD,alice,100.00", "[2] ADD,bob,1.00")
        shard.turn()
        assert shard.journal.load_snapshot() is None
        shard.send("[3] ADD,alice,2.00")
        shard.turn()
        shard.turn()
        assert shard.journal.load_snapshot().seq == 2
    finally:
        shard.close()


def test_a_snapshot_encoded_over_several_turns_holds_every_changed_account(tmp_path):
    shard = Shard(tmp_path, snapshot_interval=1.0)
    try:
        shard.send(*(f"[{i}] ADD,user{i},1.00" for i in range(1, 121)))
        shard.turn()
        shard.turn(1.0)
        snapshot = shard.journal.load_snapshot()
        assert len(snapshot.accounts) == 120  # SNAPSHOT_SLICE accounts a turn: three turns
    finally:
        shard.close()


def test_a_stop_while_a_snapshot_is_being_encoded_snapshots_its_accounts_too(tmp_path):
    shard = Shard(tmp_path, snapshot_every=1)
    shard.send(*(f"[{i}] ADD,user{i},1.00" for i in range(1, 121)))
    live = None
    try:
        shard.service.flush()  # appended; the snapshot's first slice encoded, the rest to come
        live = {u: summary(a) for u, a in shard.service.engine.accounts.items()}
    finally:
        shard.close()  # stops before the rest of the encoding ever runs
    journal = SqliteJournal(tmp_path, 0)
    try:
        assert len(journal.load_snapshot().accounts) == 120
    finally:
        journal.close()
    assert {u: summary(a) for u, a in recovered(tmp_path).accounts.items()} == live


def test_a_clean_stop_journals_what_is_left_and_snapshots_it(tmp_path):
    shard = Shard(tmp_path)
    shard.send("[1] ADD,alice,100.00")  # applied, its batch not yet flushed
    shard.close()
    journal = SqliteJournal(tmp_path, 0)
    try:
        assert journal.last_seq() == 1 and journal.load_snapshot().seq == 1
    finally:
        journal.close()
    assert recovered(tmp_path).accounts["alice"].cash == 10_000


def test_a_second_writer_of_the_same_shard_stops(tmp_path):
    first = Shard(tmp_path)
    second = Shard(tmp_path, clock=first.clock)  # recovered the same (empty) journal
    try:
        first.send("[1] ADD,alice,100.00")
        first.turn()
        second.send("[1] ADD,bob,100.00")
        second.turn()
        assert first.exits == [] and second.exits == [EXIT_FENCED]
        assert second.replies() == {}  # never acknowledged
    finally:
        first.close()
        second.journal.close()


def test_recovery_gives_every_account_as_the_live_shard_left_it(shard, tmp_path):
    shard.send("[1] ADD,alice,100.00", "[2] BUY,alice,ABC,50.00", "[3] ADD,bob,10.00",
               "[4] SET_BUY_AMOUNT,bob,ABC,5.00")
    shard.quotes.answer("ABC", 1_000, shard.now())
    shard.turn()
    shard.send("[5] COMMIT_BUY,alice", "[6] SELL,alice,ABC,20.00")
    shard.quotes.answer("ABC", 1_000, shard.now())
    shard.turn()
    shard.turn(61.0)
    shard.turn()
    live = {u: summary(a) for u, a in shard.service.engine.accounts.items()}
    assert {u: summary(a) for u, a in recovered(tmp_path).accounts.items()} == live


def test_stats_count_commands_batches_and_errors(shard):
    shard.send("[1] ADD,alice,100.00", "[2] COMMIT_BUY,alice")
    shard.turn()
    stats = shard.service.stats()
    assert stats["commands"] == 2 and stats["batches"] == 1 and stats["journal_seq"] == 1
    assert stats["errors"] == {"no_pending_buy": 1}
