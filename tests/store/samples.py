"""Accounts, transactions, replies and audit events to commit in the store tests."""

from __future__ import annotations

from server.shards.account import Account, BuyTrigger, Pending, SellTrigger
from server.shards.audit_events import (
    ACCOUNT_TRANSACTION,
    ERROR_EVENT,
    QUOTE_SERVER,
    USER_COMMAND,
    AuditEvent,
    TxRecord,
)
from server.store.port import Batch

T0 = 1_700_000_000_000  # Unix ms


def busy_account(user: str = "alice", version: int = 1) -> Account:
    """An account with something in every field: holdings, pendings, triggers, recent replies."""
    account = Account(
        user=user,
        cash=123_456,
        holdings={"ABC": 10, "XYZ": 3},
        pending_buys=[Pending(41, "ABC", 2, 1_050, T0)],
        pending_sells=[Pending(42, "XYZ", 1, 2_000, T0 + 5)],
        buy_triggers={"ABC": BuyTrigger(reserved=5_000, price=900), "QQ": BuyTrigger(2_500)},
        sell_triggers={"XYZ": SellTrigger(amount=4_000, price=2_100, reserved_shares=2)},
        last_txn=42,
        event_seq=7,
        version=version,
    )
    account.recent.append((40, "ADD,alice,1000.00", '{"txn":40,"ok":true,"cmd":"ADD"}'))
    account.recent.append((42, "SELL,alice,XYZ,20.00", '{"txn":42,"ok":true,"cmd":"SELL"}'))
    return account


def idle_account(user: str, cash: int = 1_000, version: int = 1) -> Account:
    """An account with neither pending entries nor triggers."""
    return Account(user=user, cash=cash, version=version)


def tx(txn: int, kind: str = "add", cash_delta: int = 100) -> TxRecord:
    if kind == "add":
        return TxRecord(txn, T0 + txn, kind, None, 0, None, cash_delta)
    return TxRecord(txn, T0 + txn, kind, "ABC", 2, 1_050, cash_delta)


def command_event(txn: int, user: str, seq: int, server: str = "shard-0") -> AuditEvent:
    return AuditEvent(USER_COMMAND, txn, seq, T0 + txn, server, user, command="ADD", funds=100)


def every_kind_of_event(txn: int, user: str) -> list[AuditEvent]:
    """One event of each shape, with None in the fields it does not use."""
    return [
        AuditEvent(USER_COMMAND, txn, 1, T0, "shard-0", user, command="BUY", symbol="ABC",
                   funds=2_100),
        AuditEvent(QUOTE_SERVER, txn, 2, T0 + 1, "shard-0", user, symbol="ABC", price=1_050,
                   quote_time=T0 - 3, cryptokey="k3y=="),
        AuditEvent(ACCOUNT_TRANSACTION, txn, 3, T0 + 2, "shard-0", user, action="remove",
                   funds=2_100),
        AuditEvent(ERROR_EVENT, txn, 4, T0 + 3, "shard-0", user, command="DUMPLOG",
                   filename="out.xml", message="not allowed"),
    ]


def reply(txn: int, user: str = "alice") -> tuple[int, str, str]:
    """A stored reply of an ADD: (txn, canonical line, reply JSON)."""
    return txn, f"ADD,{user},{txn}.00", f'{{"txn":{txn},"ok":true,"cmd":"ADD"}}'


def answer(account: Account, txn: int) -> None:
    """Record that `account` answered a state-changing command `txn`, as the engine does."""
    account.last_txn = txn
    account.recent.append(reply(txn, account.user))


def reply_rows(account: Account) -> list[tuple[str, int, str, str]]:
    """`Batch.replies` rows of every reply the account holds."""
    return [(account.user, txn, line, json) for txn, line, json in account.recent]


def old_format_doc(account: Account) -> dict:
    """The account's document as versions before reply rows wrote it: replies inside, `recent`."""
    return {**account.to_doc(), "recent": [list(entry) for entry in account.recent]}


def batch_for(account: Account, events: list[AuditEvent] = (),
              transactions: list[tuple[str, int, TxRecord]] = (),
              replies: list[tuple[str, int, str, str]] | None = None) -> Batch:
    """A batch of the account's document; its replies default to all it holds."""
    account.doc_parts = None  # tests change accounts by hand, where the engine would say so
    return Batch(accounts=[account.to_doc()], transactions=list(transactions),
                 events=list(events),
                 replies=reply_rows(account) if replies is None else list(replies))
