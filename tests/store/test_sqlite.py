"""SqliteStore beyond the contract: atomic batches, durability, several processes on one file."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
from contextlib import closing

import pytest

from server.shards.account import PART_HOLDINGS, RECENT_REPLIES
from server.shards.audit_events import AuditEvent
from server.store.port import Batch
from server.store.sqlite import SqliteStore
from tests.store.samples import (
    T0,
    answer,
    batch_for,
    busy_account,
    command_event,
    every_kind_of_event,
    idle_account,
    reply,
    tx,
)

PROCESSES = 3
BATCHES_PER_PROCESS = 40
EVENTS_PER_BATCH = 25
WAIT_S = 60


@pytest.fixture
def path(tmp_path):
    return tmp_path / "daytrade.sqlite"


@pytest.fixture
def store(path):
    opened = SqliteStore(path)
    yield opened
    opened.close()


def poison_user(path, user: str) -> None:
    """Make any write of `user`'s account document fail inside SQLite."""
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TRIGGER refuse_{user} BEFORE INSERT ON accounts "
                     f"WHEN NEW.user = '{user}' BEGIN SELECT RAISE(ABORT, 'refused'); END")
    conn.close()


def test_the_file_is_in_wal_mode(store, path):
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_an_unknown_synchronous_mode_is_refused(path):
    with pytest.raises(ValueError):
        SqliteStore(path, synchronous="SOMETIMES")


def test_a_batch_failing_part_way_leaves_nothing_written(store, path):
    poison_user(path, "mallory")
    batch = Batch(
        accounts=[idle_account("alice").to_doc(), idle_account("mallory").to_doc()],
        transactions=[("alice", 0, tx(1)), ("mallory", 0, tx(2))],
        events=[command_event(1, "alice", 1), command_event(2, "mallory", 1)],
        replies=[("alice", *reply(1)), ("mallory", *reply(2, "mallory"))],
    )

    with pytest.raises(sqlite3.DatabaseError, match="refused"):
        store.commit_batch(batch)

    assert store.load_account("alice") is None
    assert list(store.iter_events()) == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM reply_log").fetchone()[0] == 0
    conn.close()


def test_the_store_commits_normally_after_a_failed_batch(store, path):
    poison_user(path, "mallory")
    with pytest.raises(sqlite3.DatabaseError):
        store.commit_batch(batch_for(idle_account("mallory")))

    store.commit_batch(batch_for(idle_account("alice"), events=[command_event(1, "alice", 1)]))

    assert store.account_exists("alice")
    assert len(list(store.iter_events())) == 1


def listed_reply_txns(path) -> dict[str, list[int]]:
    """Each account row's listed replies, by txn."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT user, (SELECT json_group_array(txn) FROM reply_log WHERE id "
                            "IN (SELECT value FROM json_each(reply_ids))) FROM accounts").fetchall()
    conn.close()
    return {user: sorted(json.loads(txns)) for user, txns in rows}


def test_an_account_row_lists_only_its_users_newest_replies(store, path):
    amy, bob = idle_account("amy"), idle_account("bob")
    for txn in range(1, 3 * RECENT_REPLIES):
        account = amy if txn % 3 else bob
        answer(account, txn)
        account.version += 1
        store.commit_batch(batch_for(account, replies=[(account.user, *reply(txn, account.user))]))

    listed = listed_reply_txns(path)

    assert listed["amy"] == [t for t in range(1, 3 * RECENT_REPLIES) if t % 3][-RECENT_REPLIES:]
    assert listed["bob"] == [t for t in range(1, 3 * RECENT_REPLIES) if not t % 3]
    assert [t for t, _, _ in store.load_account("amy").recent] == listed["amy"]


def test_replies_committed_after_reopening_follow_those_listed_before(path):
    amy = idle_account("amy")
    first = SqliteStore(path)
    for txn in range(1, 11):
        answer(amy, txn)
        amy.version += 1
        first.commit_batch(batch_for(amy, replies=[("amy", *reply(txn, "amy"))]))
    first.close()

    second = SqliteStore(path)
    try:
        for txn in range(11, 21):
            answer(amy, txn)
            amy.version += 1
            second.commit_batch(batch_for(amy, replies=[("amy", *reply(txn, "amy"))]))
        assert listed_reply_txns(path)["amy"] == list(range(21 - RECENT_REPLIES, 21))
    finally:
        second.close()


def test_replies_of_a_document_not_newer_than_the_stored_one_are_still_listed(store, path):
    amy = idle_account("amy", version=5)
    answer(amy, 1)
    store.commit_batch(batch_for(amy, replies=[("amy", *reply(1, "amy"))]))
    stale = idle_account("amy", version=5)

    store.commit_batch(batch_for(stale, replies=[("amy", *reply(2, "amy"))]))

    assert listed_reply_txns(path)["amy"] == [1, 2]
    assert store.load_account("amy").version == 5


def test_a_changed_part_of_a_document_is_stored_while_the_unchanged_ones_are_reused(store):
    amy = busy_account("amy")
    store.commit_batch(Batch(accounts=[amy.to_doc()]))
    amy.holdings["NEW"] = 4
    amy.parts_changed((PART_HOLDINGS,))
    amy.cash += 1
    amy.version += 1

    store.commit_batch(Batch(accounts=[amy.to_doc()]))

    loaded = store.load_account("amy")
    assert loaded.holdings == {"ABC": 10, "XYZ": 3, "NEW": 4}
    assert loaded.cash == amy.cash
    assert loaded.buy_triggers == amy.buy_triggers
    assert loaded.sell_triggers == amy.sell_triggers
    assert loaded.pending_buys == amy.pending_buys


def create_old_reply_table(path, user: str, txns: range) -> None:
    """The clustered replies table and single-document accounts of earlier versions."""
    account = idle_account(user)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE accounts (user TEXT PRIMARY KEY, version INTEGER NOT NULL, "
                     "doc TEXT NOT NULL, active INTEGER NOT NULL)")
        conn.execute("INSERT INTO accounts VALUES (?, 1, ?, 0)",
                     (user, json.dumps(account.to_doc())))
        conn.execute("CREATE TABLE replies (user TEXT NOT NULL, txn INTEGER NOT NULL, line TEXT "
                     "NOT NULL, reply TEXT NOT NULL, PRIMARY KEY (user, txn)) WITHOUT ROWID")
        conn.executemany("INSERT INTO replies VALUES (?, ?, ?, ?)",
                         [(user, *reply(txn, user)) for txn in txns])
    conn.close()


def test_replies_of_the_older_clustered_table_move_into_the_log_on_open(path):
    create_old_reply_table(path, "amy", range(1, RECENT_REPLIES + 9))

    store = SqliteStore(path)
    try:
        assert list(store.load_account("amy").recent) == [
            reply(txn, "amy") for txn in range(9, RECENT_REPLIES + 9)]
    finally:
        store.close()


def test_an_older_account_without_replies_loads_without_any(path):
    create_old_reply_table(path, "amy", range(1, 3))
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO accounts VALUES ('bob', 1, ?, 0)",
                     (json.dumps(idle_account("bob").to_doc()),))
    conn.close()

    store = SqliteStore(path)
    try:
        assert list(store.load_account("bob").recent) == []
        assert [txn for txn, _, _ in store.load_account("amy").recent] == [1, 2]
    finally:
        store.close()


def test_an_event_with_an_empty_user_id_is_refused(store):
    event = AuditEvent("userCommand", 1, 1, T0, "shard-0", "")
    with pytest.raises(ValueError):
        store.commit_batch(Batch(events=[event]))


def test_a_commit_survives_closing_and_reopening(path):
    first = SqliteStore(path)
    first.commit_batch(batch_for(idle_account("alice", cash=4_200),
                                 events=[command_event(1, "alice", 1)],
                                 transactions=[("alice", 0, tx(1))]))
    first.set_password_hash("alice", "scrypt$x")
    reserved = first.reserve_txns(10)
    first.close()

    reopened = SqliteStore(path)
    try:
        assert reopened.load_account("alice").cash == 4_200
        assert reopened.load_account("alice").transactions == [tx(1)]
        assert list(reopened.iter_events()) == [command_event(1, "alice", 1)]
        assert reopened.get_password_hash("alice") == "scrypt$x"
        assert reopened.reserve_txns(1) == reserved + 10
    finally:
        reopened.close()


def _commit_then_wait(path, ready) -> None:
    store = SqliteStore(path)
    store.commit_batch(batch_for(idle_account("alice", cash=777),
                                 events=[command_event(1, "alice", 1)]))
    ready.send("committed")
    signal.pause()  # killed here, with the store still open


def test_a_returned_commit_survives_kill_9_of_its_process(path):
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=_commit_then_wait, args=(path, theirs))
    child.start()
    try:
        assert ours.poll(WAIT_S), "the child never committed"
        assert ours.recv() == "committed"
        os.kill(child.pid, signal.SIGKILL)
        child.join(WAIT_S)
    finally:
        if child.is_alive():
            child.kill()
            child.join()

    reopened = SqliteStore(path)
    try:
        assert reopened.load_account("alice").cash == 777
        assert len(list(reopened.iter_events())) == 1
    finally:
        reopened.close()


def _commit_many(path, worker: int, results) -> None:
    store = SqliteStore(path)
    user = f"proc{worker}"
    account = idle_account(user)
    firsts = []
    for n in range(BATCHES_PER_PROCESS):
        first = store.reserve_txns(EVENTS_PER_BATCH)
        firsts.append(first)
        account.version += 1
        account.cash += 1
        seq0 = n * EVENTS_PER_BATCH
        store.commit_batch(batch_for(
            account,
            events=[command_event(first + i, user, seq0 + i) for i in range(EVENTS_PER_BATCH)],
            transactions=[(user, n, tx(first))],
        ))
    store.close()
    results.put((worker, firsts))


def test_processes_committing_to_one_file_at_once_lose_nothing(store, path):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_commit_many, args=(path, w, results))
               for w in range(PROCESSES)]
    for worker in workers:
        worker.start()
    try:
        reserved = dict(results.get(timeout=WAIT_S) for _ in workers)
        for worker in workers:
            worker.join(WAIT_S)
            assert worker.exitcode == 0
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()

    events = list(store.iter_events())
    assert len(events) == PROCESSES * BATCHES_PER_PROCESS * EVENTS_PER_BATCH
    blocks = sorted(first for firsts in reserved.values() for first in firsts)
    assert all(b - a >= EVENTS_PER_BATCH for a, b in zip(blocks, blocks[1:])), "blocks overlap"
    for w in range(PROCESSES):
        account = store.load_account(f"proc{w}")
        assert account.cash == 1_000 + BATCHES_PER_PROCESS
        assert [t.txn for t in account.transactions] == reserved[w]


def _open_at_once(path, start, user: str) -> None:
    start.wait()
    store = SqliteStore(path)
    store.commit_batch(batch_for(idle_account(user)))
    store.close()


def test_processes_opening_a_fresh_file_at_once_all_succeed(path):
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES + 1)
    workers = [context.Process(target=_open_at_once, args=(path, start, f"proc{w}"))
               for w in range(PROCESSES + 1)]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join(WAIT_S)
            assert worker.exitcode == 0
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()

    store = SqliteStore(path)
    try:
        assert all(store.account_exists(f"proc{w}") for w in range(PROCESSES + 1))
    finally:
        store.close()


def test_an_event_stream_reads_one_snapshot_of_the_log(store):
    store.commit_batch(Batch(events=[command_event(txn, "amy", txn) for txn in range(1, 3_001)]))
    stream = store.iter_events()
    next(stream)

    store.commit_batch(Batch(events=[command_event(txn, "bob", txn) for txn in range(1, 101)]))

    assert sum(1 for _ in stream) == 2_999


def test_an_abandoned_event_stream_does_not_block_commits(store):
    store.commit_batch(Batch(events=[command_event(txn, "amy", txn) for txn in range(1, 3_001)]))
    stream = store.iter_events()
    next(stream)

    store.commit_batch(batch_for(idle_account("bob")))

    assert store.account_exists("bob")
    stream.close()


def create_old_event_table(path) -> None:
    """The clustered events table that versions before the appended audit log wrote."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE events (kind TEXT NOT NULL, txn INTEGER NOT NULL, seq INTEGER NOT NULL, "
            "timestamp INTEGER NOT NULL, server TEXT NOT NULL, user TEXT NOT NULL, command TEXT, "
            "symbol TEXT, funds INTEGER, filename TEXT, price INTEGER, quote_time INTEGER, "
            "cryptokey TEXT, action TEXT, message TEXT, PRIMARY KEY (txn, user, seq, server)) "
            "WITHOUT ROWID")
        for event in (*every_kind_of_event(9, "alice"), command_event(4, "bob", 1)):
            row = event._replace(user=event.user or "")
            conn.execute(f"INSERT INTO events VALUES ({', '.join('?' * len(row))})", row)
        conn.execute("INSERT INTO events VALUES ('userCommand', 11, -1, 5, 'gateway', '', "
                     "'DUMPLOG', NULL, NULL, 'all.xml', NULL, NULL, NULL, NULL, NULL)")
    conn.close()


def test_events_of_the_older_clustered_table_move_into_the_audit_log_on_open(path):
    create_old_event_table(path)

    store = SqliteStore(path)
    try:
        events = list(store.iter_events())
        assert events == [command_event(4, "bob", 1), *every_kind_of_event(9, "alice"),
                          AuditEvent("userCommand", 11, -1, 5, "gateway", None, "DUMPLOG",
                                     filename="all.xml")]
        assert store.max_txn() == 11
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'events'").fetchall() == []
    conn.close()


def test_a_batch_committed_again_under_its_key_writes_nothing(store):
    batch = Batch(events=[command_event(1, "amy", 1)])
    store.commit_batch(batch)

    store.commit_batch(batch)

    assert list(store.iter_events()) == [command_event(1, "amy", 1)]


def test_another_batch_with_other_events_is_written(store):
    store.commit_batch(Batch(events=[command_event(1, "amy", 1)]))

    store.commit_batch(Batch(events=[command_event(2, "amy", 2)]))

    assert list(store.iter_events()) == [command_event(1, "amy", 1), command_event(2, "amy", 2)]


def audit_rows(path) -> int:
    with sqlite3.connect(path) as conn:
        count = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    conn.close()
    return count


def test_the_events_of_one_command_share_a_row_of_the_log(store, path):
    events = every_kind_of_event(9, "alice") + every_kind_of_event(10, "alice")
    events = [e._replace(seq=seq) for seq, e in enumerate(events, 1)]

    store.commit_batch(Batch(events=events))

    assert audit_rows(path) == 2
    assert list(store.iter_events()) == events


def test_events_of_a_user_without_an_account_keep_rows_of_their_own_in_order(store, path):
    first = [AuditEvent("userCommand", 5, -2, T0, "shard-0", "ghost", command="QUOTE"),
             AuditEvent("errorEvent", 5, -1, T0, "shard-0", "ghost", message="no account")]
    store.commit_batch(Batch(events=first))
    store.commit_batch(Batch(events=first))

    assert audit_rows(path) == 4
    assert [e.seq for e in store.iter_events()] == [-2, -2, -1, -1]


def test_events_that_do_not_follow_on_start_rows_of_their_own(store, path):
    events = [command_event(3, "amy", 1), command_event(3, "amy", 3),
              command_event(3, "bob", 4), command_event(4, "bob", 5),
              AuditEvent("userCommand", 4, 6, T0, "shard-1", "bob", command="ADD", funds=100)]

    store.commit_batch(Batch(events=events))

    assert audit_rows(path) == 5
    assert list(store.iter_events()) == events


def test_a_later_event_of_the_same_command_sorts_after_its_first_row(store):
    buy = [command_event(7, "amy", 1), command_event(7, "amy", 2)]
    later = [command_event(8, "amy", 3), command_event(7, "amy", 4)]  # an expiry of txn 7
    store.commit_batch(Batch(events=buy))
    store.commit_batch(Batch(events=later))

    assert [(e.txn, e.seq) for e in store.iter_events("amy")] == [(7, 1), (7, 2), (7, 4), (8, 3)]


def many_users_batch(count: int, version: int = 1) -> Batch:
    """One batch of `count` users, each with a document, a transaction, an event and a reply."""
    users = [f"u{i:03d}" for i in range(count)]
    return Batch(accounts=[idle_account(user, cash=100 + i, version=version).to_doc()
                           for i, user in enumerate(users)],
                 transactions=[(user, 0, tx(i + 1)) for i, user in enumerate(users)],
                 events=[command_event(i + 1, user, 1) for i, user in enumerate(users)],
                 replies=[(user, *reply(i + 1, user)) for i, user in enumerate(users)])


@pytest.mark.parametrize("count", [1, 63, 64, 65, 200])
def test_a_batch_of_any_size_writes_every_row(store, count):
    store.commit_batch(many_users_batch(count))

    loaded = [store.load_account(f"u{i:03d}") for i in range(count)]
    assert [account.cash for account in loaded] == [100 + i for i in range(count)]
    assert [account.transactions for account in loaded] == [[tx(i + 1)] for i in range(count)]
    assert [[t for t, _, _ in account.recent] for account in loaded] == [[i + 1]
                                                                         for i in range(count)]
    assert [(e.txn, e.user) for e in store.iter_events()] == [(i + 1, f"u{i:03d}")
                                                              for i in range(count)]


def test_replies_of_stale_documents_in_a_large_batch_are_still_listed(store, path):
    store.commit_batch(many_users_batch(10, version=5))
    batch = many_users_batch(100, version=5)  # the first 10 are not newer than the stored ones
    batch = Batch(key="second", accounts=batch.accounts, replies=[
        (user, txn + 1_000, line, json) for user, txn, line, json in batch.replies])

    store.commit_batch(batch)

    listed = listed_reply_txns(path)
    assert listed["u000"] == [1, 1_001]
    assert listed["u099"] == [1_100]


def reply_ids_of(path) -> list[int]:
    with sqlite3.connect(path) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM reply_log ORDER BY id")]
    conn.close()
    return ids


def test_two_stores_on_one_file_give_their_replies_distinct_ids(path):
    first, second = SqliteStore(path), SqliteStore(path)
    amy, bob = idle_account("amy"), idle_account("bob")
    try:
        for txn in range(1, 6):
            for store, account in ((first, amy), (second, bob)):
                answer(account, txn)
                account.version += 1
                store.commit_batch(batch_for(account, replies=[
                    (account.user, *reply(txn, account.user))]))

        assert len(set(reply_ids_of(path))) == 10
        assert [t for t, _, _ in first.load_account("bob").recent] == [1, 2, 3, 4, 5]
        assert [t for t, _, _ in second.load_account("amy").recent] == [1, 2, 3, 4, 5]
    finally:
        first.close()
        second.close()


def test_reply_ids_continue_above_those_of_a_file_written_without_the_counter(path):
    amy = idle_account("amy")
    answer(amy, 1)
    with closing(SqliteStore(path)) as store:
        store.commit_batch(batch_for(amy, replies=[("amy", *reply(1, "amy"))]))
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'reply_id'")
        conn.execute("UPDATE reply_log SET id = 1000000")
        conn.execute("UPDATE accounts SET reply_ids = '[1000000]'")
    conn.close()

    answer(amy, 2)
    amy.version += 1
    with closing(SqliteStore(path)) as store:
        store.commit_batch(batch_for(amy, replies=[("amy", *reply(2, "amy"))]))
        assert [t for t, _, _ in store.load_account("amy").recent] == [1, 2]
    assert reply_ids_of(path)[0] == 1_000_000 and reply_ids_of(path)[1] > 1_000_000
