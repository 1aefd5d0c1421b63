"""The one place that builds a shard's audit events (and collects its pushed events) until drained.

Events of an account number themselves with the account's own counter (`Account.event_seq`).
Events of a user with no account, or of no user at all, have no counter to draw on: the events of
one such command number themselves -2, -1 (a lone event -1), as AuditEvent's docstring explains.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from protocol.money import format_cents
from protocol.quote import PriceQuote
from protocol.replies import PushedEvent
from server.shards.account import Account
from server.shards.audit_events import (
    ACCOUNT_TRANSACTION,
    DEBUG_EVENT,
    ERROR_EVENT,
    QUOTE_SERVER,
    SYSTEM_EVENT,
    USER_COMMAND,
    AuditEvent,
)

#: What a command's audit events name of it (TradingCommand.audit_fields): (stock symbol,
#: funds in cents, DUMPLOG filename).
AuditFields = tuple[str | None, int | None, str | None]
NO_FIELDS: AuditFields = (None, None, None)


class Effects(NamedTuple):
    """What the calls since the last drain produced: the audit events (journaled with the
    batch) and the events to push to the users' sessions once it is durable."""

    events: list[AuditEvent]
    pushes: list[tuple[str, PushedEvent]]


#: AuditEvent's own __new__ is a Python function of its 15 fields; building the tuple directly
#: saves 2,600 instructions an event, 7 % of the replay (two events a command). The rare events
#: of no account are built the plain way.
_new_event = tuple.__new__

class AuditRecorder:
    """Builds the audit events of one shard's engine and keeps them, with the pushed events,
    until `drain`."""

    def __init__(self, server: str) -> None:
        self.server = server
        self._events: list[AuditEvent] = []
        self._pushes: list[tuple[str, PushedEvent]] = []

    def drain(self) -> Effects:
        """Take the events collected since the last drain."""
        effects = Effects(self._events, self._pushes)
        self._events = []
        self._pushes = []
        return effects

    def has_effects(self) -> bool:
        return bool(self._events or self._pushes)

    def push(self, user: str, event: str, data: dict[str, Any]) -> None:
        """An event for the user's sessions, sent once the batch that caused it is durable."""
        self._pushes.append((user, PushedEvent(event, data)))

    # --- events of an account -----------------------------------------------------------------

    def command(self, acct: Account, txn: int, now: int, command: str,
                fields: AuditFields = NO_FIELDS) -> None:
        """The userCommand event that opens every command's events."""
        seq = acct.event_seq = acct.event_seq + 1
        symbol, funds, filename = fields
        self._events.append(_new_event(AuditEvent, (
            USER_COMMAND, txn, seq, now, self.server, acct.user, command, symbol, funds, filename,
            None, None, None, None, None)))

    def error(self, acct: Account, txn: int, now: int, command: str, fields: AuditFields,
              message: str) -> None:
        seq = acct.event_seq = acct.event_seq + 1
        symbol, funds, filename = fields
        self._events.append(_new_event(AuditEvent, (
            ERROR_EVENT, txn, seq, now, self.server, acct.user, command, symbol, funds, filename,
            None, None, None, None, message)))

    def quote(self, acct: Account, txn: int, now: int, command: str, quote: PriceQuote) -> None:
        """The quote a command used: quoteServer for a hit, debugEvent for a cached one."""
        seq = acct.event_seq = acct.event_seq + 1
        self._events.append(_quote_event(self.server, txn, seq, now, acct.user, command, quote))

    def account_transaction(self, acct: Account, txn: int, now: int, cash_delta: int) -> None:
        seq = acct.event_seq = acct.event_seq + 1
        self._events.append(_new_event(AuditEvent, (
            ACCOUNT_TRANSACTION, txn, seq, now, self.server, acct.user, None, None,
            abs(cash_delta), None, None, None, None, "add" if cash_delta > 0 else "remove",
            None)))

    def system_event(self, acct: Account, txn: int, now: int, command: str, symbol: str,
                     funds: int) -> None:
        seq = acct.event_seq = acct.event_seq + 1
        self._events.append(_new_event(AuditEvent, (
            SYSTEM_EVENT, txn, seq, now, self.server, acct.user, command, symbol, funds, None,
            None, None, None, None, None)))

    # --- events of no account ---------------------------------------------------------------

    def refused_without_account(self, user: str | None, txn: int, now: int, command: str | None,
                                fields: AuditFields, message: str) -> None:
        """A command of a user with no account (or whose line failed validation), refused."""
        symbol, funds, filename = fields
        self._events.append(AuditEvent(USER_COMMAND, txn, -2, now, self.server, user, command,
                                       symbol, funds, filename))
        self._events.append(AuditEvent(ERROR_EVENT, txn, -1, now, self.server, user, command,
                                       symbol, funds, filename, message=message))

    def quote_without_account(self, user: str, txn: int, now: int, quote: PriceQuote) -> None:
        """A QUOTE of a user with no account, answered."""
        self._events.append(AuditEvent(USER_COMMAND, txn, -2, now, self.server, user, "QUOTE",
                                       quote.symbol))
        self._events.append(_quote_event(self.server, txn, -1, now, user, "QUOTE", quote))

    def quote_hit_without_account(self, txn: int, now: int, quote: PriceQuote) -> None:
        """A sweep's quote-server hit, asked in the name of a user with no account."""
        self._events.append(_quote_event(self.server, txn, -1, now, quote.user, "QUOTE", quote))

    def dumplog_of_all(self, txn: int, now: int, filename: str) -> None:
        self._events.append(AuditEvent(USER_COMMAND, txn, -1, now, self.server, None, "DUMPLOG",
                                       filename=filename))


def _quote_event(server: str, txn: int, seq: int, now: int, user: str | None, command: str,
                 quote: PriceQuote) -> AuditEvent:
    """quoteServer (in the name the quote server was asked for) for a hit, else debugEvent."""
    if quote.fresh:
        return _new_event(AuditEvent, (
            QUOTE_SERVER, txn, seq, now, server, quote.user, None, quote.symbol, None, None,
            quote.price, quote.quote_time, quote.cryptokey, None, None))
    return _new_event(AuditEvent, (
        DEBUG_EVENT, txn, seq, now, server, user, command, quote.symbol, None, None, None, None,
        None, None, f"cached quote {quote.symbol} {format_cents(quote.price)} "
                    f"quoteServerTime {quote.quote_time} cryptokey {quote.cryptokey}"))
