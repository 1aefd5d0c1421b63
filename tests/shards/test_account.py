"""One user's state and its plain-dict form for the store."""

import json

from protocol.replies import Reply
from server.shards.account import (
    PENDING_LIFETIME_MS,
    RECENT_REPLIES,
    Account,
    BuyTrigger,
    Pending,
    SellTrigger,
)
from server.shards.audit_events import TxRecord


def rich_account() -> Account:
    acct = Account("u1", cash=12_345, holdings={"ABC": 3, "XY": 0})
    acct.pending_buys.append(Pending(7, "ABC", 2, 1_000, 5_000))
    acct.pending_sells.append(Pending(8, "XY", 1, 2_500, 6_000))
    acct.buy_triggers["ABC"] = BuyTrigger(4_000, 1_500)
    acct.sell_triggers["XY"] = SellTrigger(9_000, None, 0)
    acct.transactions.append(TxRecord(1, 4_000, "add", None, 0, None, 12_345))
    acct.last_txn = 8
    acct.recent.append((8, "SELL,u1,XY,25.00", Reply(8, "SELL", True, {"cash": "123.45"})))
    acct.event_seq = 11
    acct.version = 4
    return acct


def test_pending_entry_expires_60_s_after_it_was_made():
    assert PENDING_LIFETIME_MS == 60_000
    assert Pending(1, "ABC", 1, 100, 5_000).expires_at == 65_000


def test_document_is_plain_json_without_the_transactions():
    doc = rich_account().to_doc()
    assert json.loads(json.dumps(doc)) == doc
    assert "transactions" not in doc


def test_account_round_trips_through_its_document():
    acct = rich_account()
    back = Account.from_doc(json.loads(json.dumps(acct.to_doc())), acct.transactions)
    assert back.to_doc() == acct.to_doc()
    assert back.transactions == acct.transactions
    assert back.persisted_tx == 1
    assert back.pending_buys == acct.pending_buys and back.sell_triggers == acct.sell_triggers


def test_only_the_newest_replies_are_kept():
    acct = Account("u1")
    for txn in range(1, RECENT_REPLIES + 3):
        acct.recent.append((txn, "ADD,u1,1.00", "{}"))
    assert [t for t, _, _ in acct.recent] == list(range(3, RECENT_REPLIES + 3))


def test_document_leaves_the_stored_replies_to_rows_of_their_own():
    acct = rich_account()
    acct.remember(9, "ADD,u1,1.00", "{}")
    assert "recent" not in acct.to_doc()
    assert acct.new_replies == [(9, "ADD,u1,1.00", "{}")]


def test_account_loads_its_replies_oldest_first():
    acct = rich_account()
    replies = [(5, "ADD,u1,1.00", '{"a":1}'), (6, "ADD,u1,2.00", '{"a":2}')]
    back = Account.from_doc(acct.to_doc(), [], replies)
    assert list(back.recent) == replies and back.new_replies == []


def test_account_of_an_older_document_version_keeps_its_embedded_replies():
    doc = rich_account().to_doc() | {"recent": [[5, "ADD,u1,1.00", "{}"]]}
    back = Account.from_doc(doc)
    assert list(back.recent) == [(5, "ADD,u1,1.00", "{}")]
    assert back.new_replies == [(5, "ADD,u1,1.00", "{}")]  # rewritten as rows on the next commit
