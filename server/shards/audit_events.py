"""Audit events (the rows of DUMPLOG) and transaction records, as immutable tuples.

NamedTuples rather than dataclasses: the engine makes several per command on the hot path.
"""

from __future__ import annotations

from typing import NamedTuple

USER_COMMAND = "userCommand"
QUOTE_SERVER = "quoteServer"
ACCOUNT_TRANSACTION = "accountTransaction"
SYSTEM_EVENT = "systemEvent"
ERROR_EVENT = "errorEvent"
DEBUG_EVENT = "debugEvent"
EVENT_KINDS = (USER_COMMAND, QUOTE_SERVER, ACCOUNT_TRANSACTION, SYSTEM_EVENT, ERROR_EVENT,
               DEBUG_EVENT)


class AuditEvent(NamedTuple):
    """One element of the audit log (logfile.xsd). Money and prices are integer cents.

    Events sort by (txn, user, seq): `seq` is the user's own event counter, so the events of one
    command keep their order, and a pending entry's later expiry sorts after the command itself.
    Events of a user with no account (and of no user at all: a user id that failed validation,
    the all-users DUMPLOG) have no counter to draw on: they number themselves -2, -1 within their
    command, so that they still sort in order and a store can tell they need the txn to be unique.
    """

    kind: str
    txn: int
    seq: int
    timestamp: int  # Unix ms
    server: str
    user: str | None
    command: str | None = None
    symbol: str | None = None
    funds: int | None = None  # cents
    filename: str | None = None
    price: int | None = None  # quoteServer: cents
    quote_time: int | None = None  # quoteServer: quoteServerTime
    cryptokey: str | None = None
    action: str | None = None  # accountTransaction: "add" | "remove"
    message: str | None = None  # errorEvent errorMessage / debugEvent debugMessage


class TxRecord(NamedTuple):
    """One change of a user's cash or shares (COMMANDS.md `transactions`): the fields of the
    plain tuples an account keeps (`Account.record` says why not this class)."""

    txn: int
    time: int
    kind: str  # add, buy_reserve, buy_commit, buy_release, sell_reserve, ...
    symbol: str | None
    shares: int
    price: int | None  # cents per share
    cash_delta: int  # cents; + to cash, - from cash


TX_KINDS = ("add", "buy_reserve", "buy_commit", "buy_release", "sell_reserve", "sell_commit",
            "sell_release", "trigger_reserve", "trigger_release", "trigger_fill")
