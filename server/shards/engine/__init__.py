"""The pure trading engine: every rule of COMMANDS.md, with no sockets, database, clock or quotes.

`core.Engine` wires the parts: the rules as functions over an `Account` (funds, orders,
triggers, reads), the audit recorder, the expiry queue, the trigger book, the summary view and
idempotency.
"""

from server.shards.engine.audit import Effects
from server.shards.engine.core import Engine
from server.shards.engine.outcomes import (
    DumpRequest,
    NeedQuote,
    Outcome,
    Refused,
    quote_unavailable,
    replies_of,
)
from server.shards.engine.summary import SUMMARY_TRANSACTIONS, summary

__all__ = ["SUMMARY_TRANSACTIONS", "DumpRequest", "Effects", "Engine", "NeedQuote", "Outcome",
           "Refused", "quote_unavailable", "replies_of", "summary"]
