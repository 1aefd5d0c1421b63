"""Txn idempotency (PROTOCOL.md): a state-changing command's answer is kept (`Account.answered`),
so that a retry of the same line under the same txn gets it again instead of running twice."""

from __future__ import annotations

from protocol import commands as c
from protocol.replies import Reply, decode
from server.shards.account import Account


def stored_reply(acct: Account, cmd: c.TradingCommand, txn: int) -> Reply | None:
    """The reply kept for this very line under this txn, marked replayed; None if none is kept."""
    line = cmd.line()
    for stored_txn, stored_line, reply_json in acct.recent:
        if stored_txn == txn and stored_line == line:
            return decode(reply_json).as_replayed()
    return None
