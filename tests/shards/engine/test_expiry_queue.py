"""The expiry queue: when pending entries fall due, for the shard's timer and for a user's next
command."""

from protocol.limits import PENDING_LIFETIME_MS
from server.shards.account import Account, Pending
from server.shards.engine.expiry import ExpiryQueue

T0 = 1_000_000


def entry(txn: int, created_at: int) -> Pending:
    return Pending(txn, "ABC", 1, 100, created_at)


def test_an_empty_queue_has_nothing_due():
    queue = ExpiryQueue()
    assert queue.next_due() is None
    assert queue.pop_due(T0 + 10 * PENDING_LIFETIME_MS) == []


def test_an_entry_falls_due_60_seconds_after_it_was_made():
    queue = ExpiryQueue()
    queue.add("ann", entry(1, T0))
    assert queue.next_due() == T0 + PENDING_LIFETIME_MS
    assert queue.pop_due(T0 + PENDING_LIFETIME_MS - 1) == []
    assert queue.pop_due(T0 + PENDING_LIFETIME_MS) == ["ann"]
    assert queue.next_due() is None


def test_due_entries_come_out_in_due_order_one_per_entry():
    queue = ExpiryQueue()
    queue.add("bob", entry(2, T0 + 5))
    queue.add("ann", entry(1, T0))
    queue.add("bob", entry(3, T0 + 9))
    queue.add("cy", entry(4, T0 + 1_000))
    assert queue.pop_due(T0 + PENDING_LIFETIME_MS + 9) == ["ann", "bob", "bob"]
    assert queue.next_due() == T0 + 1_000 + PENDING_LIFETIME_MS


def test_a_user_may_have_expired_entries_once_the_oldest_is_60_seconds_old():
    queue = ExpiryQueue()
    queue.add("ann", entry(1, T0 + 50))
    queue.add("ann", entry(2, T0))
    assert not queue.may_have_expired("ann", T0 + PENDING_LIFETIME_MS - 1)
    assert queue.may_have_expired("ann", T0 + PENDING_LIFETIME_MS)


def test_a_user_without_entries_has_none_expired():
    assert not ExpiryQueue().may_have_expired("ann", T0 + 10 * PENDING_LIFETIME_MS)


def test_settled_takes_the_oldest_entry_still_pending():
    queue = ExpiryQueue()
    acct = Account("ann", pending_buys=[entry(1, T0)], pending_sells=[entry(2, T0 + 500)])
    queue.add("ann", acct.pending_buys[0])
    queue.add("ann", acct.pending_sells[0])
    acct.pending_buys.clear()
    queue.settled(acct)
    assert not queue.may_have_expired("ann", T0 + PENDING_LIFETIME_MS + 499)
    assert queue.may_have_expired("ann", T0 + PENDING_LIFETIME_MS + 500)


def test_settled_with_nothing_pending_forgets_the_user():
    queue = ExpiryQueue()
    acct = Account("ann", pending_buys=[entry(1, T0)])
    queue.add("ann", acct.pending_buys[0])
    acct.pending_buys.clear()
    queue.settled(acct)
    assert not queue.may_have_expired("ann", T0 + 10 * PENDING_LIFETIME_MS)


def test_load_queues_every_pending_entry_of_an_account():
    queue = ExpiryQueue()
    queue.load(Account("ann", pending_buys=[entry(1, T0 + 7)], pending_sells=[entry(2, T0)]))
    assert queue.next_due() == T0 + PENDING_LIFETIME_MS
    assert queue.may_have_expired("ann", T0 + PENDING_LIFETIME_MS)
    assert queue.pop_due(T0 + PENDING_LIFETIME_MS + 7) == ["ann", "ann"]
