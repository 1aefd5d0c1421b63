"""QUOTE and DUMPLOG: audited, never stored, never advancing the txn (DISPLAY_SUMMARY is the
summary view's)."""

from __future__ import annotations

from typing import Any

from protocol import commands as c
from protocol.money import format_cents
from protocol.quote import PriceQuote
from protocol.replies import Reply
from server.shards.account import Account
from server.shards.engine.audit import AuditRecorder
from server.shards.engine.outcomes import DumpRequest


def quote(acct: Account | None, cmd: c.Quote, txn: int, now: int, quote: PriceQuote,
          audit: AuditRecorder | None = None) -> Reply:
    return Reply(txn, "QUOTE", True, {
        "symbol": quote.symbol, "price": format_cents(quote.price), "quote_time": quote.quote_time,
        "cryptokey": quote.cryptokey, "age_ms": max(0, now - quote.quote_time)})


def dumplog(acct: Account | None, cmd: c.DumpLog, txn: int, now: int, quote: Any,
            audit: AuditRecorder | None = None) -> DumpRequest:
    """The caller writes the file: the engine only audits the command."""
    return DumpRequest(txn, cmd.user, cmd.filename)
