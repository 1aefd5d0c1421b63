"""Idempotency: a state-changing command's reply is kept, and a retry of the same line under the
same txn gets it again, marked replayed."""

import gc

from protocol import commands as c
from protocol.errors import ErrorCode
from protocol.limits import RECENT_REPLIES
from protocol.replies import Reply
from server.shards.account import Account
from server.shards.engine.idempotency import stored_reply


def test_an_answered_command_sets_the_users_last_txn():
    acct = Account("ann")
    acct.answered(7, c.CommitBuy("ann", 7), Reply(7, "COMMIT_BUY", True, {}))
    assert acct.last_txn == 7


def test_a_retry_of_the_same_line_gets_the_stored_reply_replayed():
    acct = Account("ann")
    cmd = c.Add("ann", 500, 7)
    acct.answered(7, cmd, Reply(7, "ADD", True, {"cash": "5.00"}))
    assert stored_reply(acct, cmd, 7) == Reply(7, "ADD", True, {"cash": "5.00"}, replayed=True)


def test_a_stored_failure_is_replayed_too():
    acct = Account("ann")
    cmd = c.CommitBuy("ann", 7)
    acct.answered(7, cmd,
                  Reply(7, "COMMIT_BUY", False, None, ErrorCode.NO_PENDING_BUY, "none"))
    assert stored_reply(acct, cmd, 7).code is ErrorCode.NO_PENDING_BUY


def test_another_line_under_the_same_txn_has_no_stored_reply():
    acct = Account("ann")
    acct.answered(7, c.Add("ann", 500, 7), Reply(7, "ADD", True, {}))
    assert stored_reply(acct, c.Add("ann", 600, 7), 7) is None


def test_what_is_kept_is_plain_text_that_the_collector_stops_tracking():
    acct = Account("ann")
    acct.answered(7, c.Add("ann", 500, 7), Reply(7, "ADD", True, {"cash": "5.00"}))
    acct.record(7, 0, "add", None, 0, None, 500)
    gc.collect()
    assert acct.recent[0] == (7, "ADD,ann,5.00", Reply(7, "ADD", True, {"cash": "5.00"}).to_json())
    assert not gc.is_tracked(acct.recent[0])
    assert not gc.is_tracked(acct.transactions[0])


def test_only_the_newest_replies_are_kept():
    acct = Account("ann")
    for txn in range(1, RECENT_REPLIES + 2):
        acct.answered(txn, c.CommitBuy("ann", txn), Reply(txn, "COMMIT_BUY", True, {}))
    assert stored_reply(acct, c.CommitBuy("ann", 1), 1) is None
    assert stored_reply(acct, c.CommitBuy("ann", 2), 2) is not None
