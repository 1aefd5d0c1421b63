"""ADD, and the one way cash moves: changed, recorded in the history, audited."""

from __future__ import annotations

from typing import Any

from protocol import commands as c
from protocol.money import format_cents
from protocol.replies import Reply
from server.shards.account import Account
from server.shards.engine.audit import AuditRecorder


def move_cash(acct: Account, audit: AuditRecorder, txn: int, now: int, kind: str,
              symbol: str | None, shares: int, price: int | None, cash_delta: int) -> None:
    """Change the account's cash by `cash_delta`, record it and audit it (accountTransaction)."""
    acct.cash += cash_delta
    acct.record(txn, now, kind, symbol, shares, price, cash_delta)
    audit.account_transaction(acct, txn, now, cash_delta)


def add(acct: Account, cmd: c.Add, txn: int, now: int, quote: Any,
        audit: AuditRecorder) -> Reply:
    move_cash(acct, audit, txn, now, "add", None, 0, None, cmd.amount)
    return Reply(txn, "ADD", True, {"user": acct.user, "amount": format_cents(cmd.amount),
                                    "cash": format_cents(acct.cash)})
