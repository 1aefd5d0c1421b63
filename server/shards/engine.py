"""The pure trading engine: every rule of COMMANDS.md, with no sockets, database, clock or quotes.

Time (`now`, Unix ms) and quotes come in as arguments; the engine answers with a `Reply` (or asks
for what it lacks: `NeedQuote`, `DumpRequest`) and accumulates audit events and pushed events,
which the caller takes with `drain()`. The engine knows nothing of how it is stored: the shard
journals the inputs of its calls, and the same calls replayed give the same state.

Choices the specification leaves open, made as a careful broker would:
- Authorization is the gateway's job; the engine trusts that the caller may act for the user.
- A failed state-changing command is stored for idempotency like a success (PROTOCOL.md: "errors
  included") and advances the user's highest txn; a `stale_txn` or a replayed reply changes nothing.
- Reads (QUOTE, DISPLAY_SUMMARY, DUMPLOG) are audited but never stored and never advance the txn.
- DISPLAY_SUMMARY and DUMPLOG of a user with no account fail `unknown_user`, like every command but
  ADD and QUOTE; a user who signed up (LOGIN) has an account with zeros and empty lists.
- SELL with no free shares of the symbol fails `insufficient_shares` before any quote is fetched
  (no price makes 0 shares worth a positive amount); BUY checks `cash >= amount` before the quote.
- A pending entry's expiry is dated at its expiry time, whether the shard's timer or a later command
  of the same user noticed it first.
- A sweep quote that was a real quote-server hit is audited (`quoteServer`) under the txn of the
  first firing it caused, or under a txn of its own when nothing fired (`audit_quote_hit`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, fields
from operator import attrgetter
from types import SimpleNamespace
from typing import Any, NamedTuple

from protocol import commands as c
from protocol.errors import ErrorCode
from protocol.money import format_cents
from protocol.quote import QUOTE_LIFETIME_MS, PriceQuote
from protocol.replies import PENDING_EXPIRED, TRIGGER_FIRED, PushedEvent, Reply, decode
from server.shards.account import (
    PENDING_LIFETIME_MS,
    Account,
    BuyTrigger,
    Pending,
    SellTrigger,
)
from server.shards.audit_events import (
    ACCOUNT_TRANSACTION,
    DEBUG_EVENT,
    ERROR_EVENT,
    QUOTE_SERVER,
    SYSTEM_EVENT,
    USER_COMMAND,
    AuditEvent,
    TxRecord,
)

SUMMARY_TRANSACTIONS = 20
#: The error codes by name. A namespace, not the enum class: reading a member off an Enum class
#: goes through its metaclass (~0.1 us), and nearly half the commands read one or two.
E = SimpleNamespace(**ErrorCode.__members__)


@dataclass(frozen=True, slots=True)
class NeedQuote:
    """The command needs a usable quote for `symbol`, asked for `user`; call again with it."""

    symbol: str
    user: str


@dataclass(frozen=True, slots=True)
class DumpRequest:
    """DUMPLOG was audited; the caller writes the file (all users when `user` is None)."""

    txn: int
    user: str | None
    filename: str


class Effects(NamedTuple):
    """What the calls since the last drain produced: the audit events (journaled with the
    batch) and the events to push to the users' sessions once it is durable."""

    events: list[AuditEvent]
    pushes: list[tuple[str, PushedEvent]]


class _Failure(Exception):
    """A rule said no: becomes an error reply and an errorEvent; nothing is changed.

    Returned, never raised, by a handler or a precheck as `_Failure(code, message)` (both stay in
    `args`): nearly half the commands fail, and a raise and its catch cost twice a return and a
    type check. An exception class because it is built in C, with no __init__ of its own to call.
    """


Outcome = Reply | NeedQuote | DumpRequest


class Engine:
    """The trading state of one shard's users and the rules that change it."""

    def __init__(self, server: str = "shard-0") -> None:
        self.server = server
        self.accounts: dict[str, Account] = {}
        self._events: list[AuditEvent] = []
        self._pushes: list[tuple[str, PushedEvent]] = []
        # (expires_at, user, txn): may hold entries already settled; those pop as no-ops.
        self._expiries: list[tuple[int, str, int]] = []
        # user -> a creation time no later than any of its pending entries' (settled entries may
        # leave it early), so execute() looks for expired entries only when there may be some.
        self._oldest_pending: dict[str, int] = {}
        # symbol -> users with an armed trigger (buy or sell) on it.
        self._armed: dict[str, set[str]] = {}
        # Derived from _armed and dropped whenever it may change (_update_armed): the user to
        # ask for each armed symbol, and per symbol (highest armed buy trigger price, lowest
        # armed sell trigger price), so a sweep quote that crosses neither returns at once.
        self._armed_owners: dict[str, str] | None = None
        self._bounds: dict[str, tuple[int | None, int | None]] = {}
        # DISPLAY_SUMMARY renders from these (see _newest_json and _trigger_tables): per user,
        # (account, records rendered, last record rendered, its 20 newest records as dicts)
        self._tx_views: dict[str, tuple[Account, int, TxRecord | None, list[dict[str, Any]]]] = {}
        # and [account, buy trigger table, sell trigger table, buy rows by symbol, sell rows by
        # symbol]: a change of one trigger by a command drops its table and its own row
        # (_buy_trigger_changed, _sell_trigger_changed), a firing drops the whole entry,
        self._tables: dict[str, list[Any]] = {}
        # and (account, its holdings sorted by symbol, zeros included), checked against the
        # account's holdings at each summary (see _holdings_shown).
        self._sorted_holdings: dict[str, tuple[Account, dict[str, int]]] = {}
        self._handlers: dict[type, Callable[..., Outcome]] = {
            c.Add: self._add,
            c.Quote: self._quote,
            c.Buy: self._buy,
            c.CommitBuy: self._commit_buy,
            c.CancelBuy: self._cancel_buy,
            c.Sell: self._sell,
            c.CommitSell: self._commit_sell,
            c.CancelSell: self._cancel_sell,
            c.SetBuyAmount: self._set_buy_amount,
            c.SetBuyTrigger: self._set_buy_trigger,
            c.CancelSetBuy: self._cancel_set_buy,
            c.SetSellAmount: self._set_sell_amount,
            c.SetSellTrigger: self._set_sell_trigger,
            c.CancelSetSell: self._cancel_set_sell,
            c.DisplaySummary: self._display_summary,
            c.DumpLog: self._dumplog,
        }
        # Everything execute() needs to know of a command class, in one lookup.
        self._specs: dict[type, tuple[Callable[..., Outcome], bool, Any, Any, bool]] = {
            cls: (handler, cls in _QUOTED, _PRECHECKS.get(cls), _AUDIT_FIELDS[cls],
                  cls.STATE_CHANGING)
            for cls, handler in self._handlers.items()}

    # --- accounts ---------------------------------------------------------------------------

    def load(self, account: Account) -> None:
        """Adopt an account from a snapshot (its pending entries and triggers included)."""
        self.accounts[account.user] = account
        for p in account.pending_buys:
            heapq.heappush(self._expiries, (p.expires_at, account.user, p.txn))
        for p in account.pending_sells:
            heapq.heappush(self._expiries, (p.expires_at, account.user, p.txn))
        self._note_oldest_pending(account)
        for sym in account.buy_triggers:
            self._update_armed(account, sym)
        for sym in account.sell_triggers:
            self._update_armed(account, sym)

    def open_account(self, user: str, now: int) -> bool:
        """Create an empty account (sign-up by LOGIN). False if it already exists."""
        if user in self.accounts:
            return False
        acct = Account(user)
        self.accounts[user] = acct
        return True

    # --- commands -----------------------------------------------------------------------------

    def execute(self, cmd: c.TradingCommand, now: int, quote: PriceQuote | None = None) -> Outcome:
        """Apply one trading command received at `now`. `cmd.txn` must be set.

        Returns the reply, or `NeedQuote` (nothing changed; call again with a usable quote, or
        with `quote_unavailable()` when none can be had), or `DumpRequest` for DUMPLOG.
        """
        txn = cmd.txn
        if txn is None:
            raise ValueError("the caller assigns a txn before the engine sees a command")
        user = cmd.user
        ctype = type(cmd)
        handler, quoted, precheck, read_audit, state_changing = self._specs[ctype]
        acct = self.accounts.get(user) if user is not None else None
        if acct is None:
            if ctype is c.Quote:
                return self._quote_without_account(cmd, txn, now, quote)
            if ctype is c.DumpLog and user is None:
                return self._dumplog_all(cmd, txn, now)
            if ctype is not c.Add:
                return self._fail_unlogged(cmd, txn, now, E.UNKNOWN_USER,
                                           f"no account for user {user}")
            acct = self.accounts[user] = Account(user)
        else:
            oldest = self._oldest_pending.get(user)
            if oldest is not None and oldest <= now - PENDING_LIFETIME_MS:
                self._expire_account(acct, now)
            if state_changing and txn <= acct.last_txn:
                return self._retry(acct, cmd, txn, now)
        if quoted:
            if precheck is not None:
                failure = precheck(acct, cmd)
                if failure is not None:
                    code, message = failure.args
                    return self._fail(acct, cmd, txn, now, code, message, False, read_audit(cmd))
            if quote is None or (quote is not _UNAVAILABLE and (
                    quote.symbol != cmd.symbol
                    or now >= quote.quote_time + QUOTE_LIFETIME_MS)):  # not usable_at(now)
                return _need_quote(cmd.symbol, user)
        audit = read_audit(cmd)  # read after the quote check: a third of commands return for one
        # the userCommand event (_user_command, inlined: every command passes here)
        seq = acct.event_seq = acct.event_seq + 1
        self._events.append(_new_tuple(AuditEvent, (
            USER_COMMAND, txn, seq, now, self.server, acct.user, cmd.NAME, audit[0],
            audit[1], audit[2], None, None, None, None, None)))
        if quoted:
            if quote is _UNAVAILABLE:
                return self._fail(acct, cmd, txn, now, E.QUOTE_UNAVAILABLE,
                                  f"no quote for {cmd.symbol} could be had", True, audit)
            # the quote's event (_emit_quote, inlined: a third of commands pass here)
            seq = acct.event_seq = seq + 1
            self._events.append(_quote_event(self.server, txn, seq, now, acct.user, cmd.NAME,
                                             quote))
        outcome = handler(acct, cmd, txn, now, quote)
        if type(outcome) is _Failure:
            code, message = outcome.args
            return self._fail(acct, cmd, txn, now, code, message, True, audit)
        if state_changing:
            acct.last_txn = txn
            acct.remember(txn, cmd.line(), outcome)
        return outcome

    def _retry(self, acct: Account, cmd: c.TradingCommand, txn: int, now: int) -> Reply:
        line = cmd.line()
        for stored_txn, stored_line, reply in acct.recent:
            if stored_txn == txn and stored_line == line:
                if isinstance(reply, str):
                    reply = decode(reply)
                return reply.as_replayed()
        return self._fail(acct, cmd, txn, now, E.STALE_TXN,
                          f"txn {txn} is not above {acct.last_txn}, the last one applied for "
                          f"{acct.user}, and is not a retry of a stored command")

    def _fail(self, acct: Account, cmd: c.TradingCommand, txn: int, now: int,
              code: ErrorCode, message: str, logged: bool = False,
              audit: tuple[Any, Any, Any] | None = None) -> Reply:
        if audit is None:
            audit = _audit_fields(cmd)
        if not logged:
            self._user_command(acct, cmd, txn, now, audit)
        name = cmd.NAME
        seq = acct.event_seq = acct.event_seq + 1  # the errorEvent (_emit, inlined)
        self._events.append(_new_tuple(AuditEvent, (
            ERROR_EVENT, txn, seq, now, self.server, acct.user, name, audit[0], audit[1],
            audit[2], None, None, None, None, message)))
        reply = Reply(txn, name, False, None, code, message)
        if cmd.STATE_CHANGING and code is not E.STALE_TXN:
            acct.last_txn = txn
            acct.remember(txn, cmd.line(), reply)
        return reply

    def _fail_unlogged(self, cmd: c.TradingCommand, txn: int, now: int, code: ErrorCode,
                       message: str) -> Reply:
        """A failure for a user with no account: audited, but nowhere to store it."""
        user = cmd.user
        sym = getattr(cmd, "symbol", None)
        funds = _funds_of(cmd)
        fname = getattr(cmd, "filename", None)
        self._events.append(AuditEvent(USER_COMMAND, txn, -2, now, self.server, user, cmd.NAME,
                                       sym, funds, fname))
        self._events.append(AuditEvent(ERROR_EVENT, txn, -1, now, self.server, user, cmd.NAME,
                                       sym, funds, fname, message=message))
        return Reply(txn, cmd.NAME, False, None, code, message)

    def reject(self, command: str | None, user: str | None, txn: int, now: int, code: ErrorCode,
               message: str) -> Reply:
        """Audit a trading-command line that failed validation (the rejected field is only quoted
        in `message`) and return its error reply. Changes no state."""
        acct = self.accounts.get(user) if user is not None else None
        if command is not None:
            if acct is not None:
                self._emit(acct, USER_COMMAND, txn, now, command)
                self._emit(acct, ERROR_EVENT, txn, now, command, message=message)
            else:
                self._events.append(AuditEvent(USER_COMMAND, txn, -2, now, self.server, user,
                                               command))
                self._events.append(AuditEvent(ERROR_EVENT, txn, -1, now, self.server, user,
                                               command, message=message))
        return Reply(txn, command, False, None, code, message)

    # --- the sixteen commands ------------------------------------------------------------------

    def _add(self, acct: Account | None, cmd: c.Add, txn: int, now: int, quote: Any) -> Reply:
        if acct is None:
            acct = Account(cmd.user)
            self.accounts[cmd.user] = acct
        acct.cash += cmd.amount
        self._cash_moved(acct, txn, now, "add", None, 0, None, cmd.amount)
        return Reply(txn, "ADD", True, {"user": acct.user, "amount": format_cents(cmd.amount),
                                        "cash": format_cents(acct.cash)})

    def _quote(self, acct: Account, cmd: c.Quote, txn: int, now: int, quote: PriceQuote) -> Reply:
        return _quote_reply(txn, now, quote)

    def _quote_without_account(self, cmd: c.Quote, txn: int, now: int,
                               quote: PriceQuote | None) -> Outcome:
        if quote is None or (quote is not _UNAVAILABLE and (quote.symbol != cmd.symbol
                                                            or not quote.usable_at(now))):
            return NeedQuote(cmd.symbol, cmd.user)
        user = cmd.user
        self._events.append(AuditEvent(USER_COMMAND, txn, -2, now, self.server, user, "QUOTE",
                                       cmd.symbol))
        if quote is _UNAVAILABLE:
            message = f"no quote for {cmd.symbol} could be had"
            self._events.append(AuditEvent(ERROR_EVENT, txn, -1, now, self.server, user, "QUOTE",
                                           cmd.symbol, message=message))
            return Reply(txn, "QUOTE", False, None, E.QUOTE_UNAVAILABLE, message)
        self._events.append(_quote_event(self.server, txn, -1, now, user, "QUOTE", quote))
        return _quote_reply(txn, now, quote)

    def _buy(self, acct: Account, cmd: c.Buy, txn: int, now: int,
             quote: PriceQuote) -> Reply | _Failure:
        price = quote.price
        shares = cmd.amount // price
        if shares == 0:
            return _Failure(E.AMOUNT_TOO_SMALL, f"{format_cents(cmd.amount)} buys no share of "
                                                f"{cmd.symbol} at {format_cents(price)}")
        cost = shares * price
        acct.cash -= cost
        entry = Pending(txn, cmd.symbol, shares, price, now)
        acct.pending_buys.append(entry)
        self._track_pending(acct, entry)
        self._cash_moved(acct, txn, now, "buy_reserve", cmd.symbol, shares, price, -cost)
        return Reply(txn, "BUY", True, {
            "symbol": cmd.symbol, "shares": shares, "price": format_cents(price),
            "cost": format_cents(cost), "expires_at": entry.expires_at,
            "cash": format_cents(acct.cash)})

    def _commit_buy(self, acct: Account, cmd: c.CommitBuy, txn: int, now: int,
                    quote: Any) -> Reply | _Failure:
        if not acct.pending_buys:
            return _Failure(E.NO_PENDING_BUY, "no pending BUY within the last 60 s")
        entry = acct.pending_buys.pop()
        held = acct.holdings.get(entry.symbol, 0) + entry.shares
        acct.holdings[entry.symbol] = held
        self._record(acct, txn, now, "buy_commit", entry.symbol, entry.shares, entry.price, 0)
        return Reply(txn, "COMMIT_BUY", True, {
            "symbol": entry.symbol, "shares": entry.shares, "price": format_cents(entry.price),
            "cost": format_cents(entry.shares * entry.price), "holding": held,
            "cash": format_cents(acct.cash)})

    def _cancel_buy(self, acct: Account, cmd: c.CancelBuy, txn: int, now: int,
                    quote: Any) -> Reply | _Failure:
        if not acct.pending_buys:
            return _Failure(E.NO_PENDING_BUY, "no pending BUY within the last 60 s")
        entry = acct.pending_buys.pop()
        cost = entry.shares * entry.price
        acct.cash += cost
        self._cash_moved(acct, txn, now, "buy_release", entry.symbol, entry.shares, entry.price,
                         cost)
        return Reply(txn, "CANCEL_BUY", True, {
            "symbol": entry.symbol, "shares": entry.shares, "price": format_cents(entry.price),
            "cost": format_cents(cost), "cash": format_cents(acct.cash)})

    def _sell(self, acct: Account, cmd: c.Sell, txn: int, now: int,
              quote: PriceQuote) -> Reply | _Failure:
        held = acct.holdings.get(cmd.symbol, 0)
        price = quote.price
        if held * price < cmd.amount:
            return _Failure(E.INSUFFICIENT_SHARES,
                            f"{held} shares of {cmd.symbol} at {format_cents(price)} are worth "
                            f"less than {format_cents(cmd.amount)}")
        shares = cmd.amount // price
        if shares == 0:
            return _Failure(E.AMOUNT_TOO_SMALL, f"{format_cents(cmd.amount)} sells no share of "
                                                f"{cmd.symbol} at {format_cents(price)}")
        acct.holdings[cmd.symbol] = held - shares
        entry = Pending(txn, cmd.symbol, shares, price, now)
        acct.pending_sells.append(entry)
        self._track_pending(acct, entry)
        self._record(acct, txn, now, "sell_reserve", cmd.symbol, shares, price, 0)
        return Reply(txn, "SELL", True, {
            "symbol": cmd.symbol, "shares": shares, "price": format_cents(price),
            "proceeds": format_cents(shares * price), "expires_at": entry.expires_at,
            "holding": held - shares, "cash": format_cents(acct.cash)})

    def _commit_sell(self, acct: Account, cmd: c.CommitSell, txn: int, now: int,
                     quote: Any) -> Reply | _Failure:
        if not acct.pending_sells:
            return _Failure(E.NO_PENDING_SELL, "no pending SELL within the last 60 s")
        entry = acct.pending_sells.pop()
        proceeds = entry.shares * entry.price
        acct.cash += proceeds
        self._cash_moved(acct, txn, now, "sell_commit", entry.symbol, entry.shares, entry.price,
                         proceeds)
        return Reply(txn, "COMMIT_SELL", True, {
            "symbol": entry.symbol, "shares": entry.shares, "price": format_cents(entry.price),
            "proceeds": format_cents(proceeds), "cash": format_cents(acct.cash)})

    def _cancel_sell(self, acct: Account, cmd: c.CancelSell, txn: int, now: int,
                     quote: Any) -> Reply | _Failure:
        if not acct.pending_sells:
            return _Failure(E.NO_PENDING_SELL, "no pending SELL within the last 60 s")
        entry = acct.pending_sells.pop()
        held = acct.holdings.get(entry.symbol, 0) + entry.shares
        acct.holdings[entry.symbol] = held
        self._record(acct, txn, now, "sell_release", entry.symbol, entry.shares, entry.price, 0)
        return Reply(txn, "CANCEL_SELL", True, {
            "symbol": entry.symbol, "shares": entry.shares, "price": format_cents(entry.price),
            "holding": held, "cash": format_cents(acct.cash)})

    def _set_buy_amount(self, acct: Account, cmd: c.SetBuyAmount, txn: int, now: int,
                        quote: Any) -> Reply | _Failure:
        trig = acct.buy_triggers.get(cmd.symbol)
        old = trig.reserved if trig is not None else 0
        if acct.cash + old < cmd.amount:
            return _Failure(E.INSUFFICIENT_FUNDS,
                            f"SET_BUY_AMOUNT needs {format_cents(cmd.amount)}, cash with the old "
                            f"reservation is {format_cents(acct.cash + old)}")
        if trig is not None and trig.price is not None and cmd.amount < trig.price:
            return _Failure(E.AMOUNT_TOO_SMALL,
                            f"{format_cents(cmd.amount)} is below the trigger price "
                            f"{format_cents(trig.price)} of {cmd.symbol}")
        if old:
            acct.cash += old
            self._cash_moved(acct, txn, now, "trigger_release", cmd.symbol, 0, None, old)
        acct.cash -= cmd.amount
        self._cash_moved(acct, txn, now, "trigger_reserve", cmd.symbol, 0, None, -cmd.amount)
        if trig is None:
            trig = acct.buy_triggers[cmd.symbol] = BuyTrigger(cmd.amount)
        else:
            trig.reserved = cmd.amount
        self._buy_trigger_changed(acct, cmd.symbol)
        return Reply(txn, "SET_BUY_AMOUNT", True, _buy_trigger_result(cmd.symbol, trig, acct))

    def _set_buy_trigger(self, acct: Account, cmd: c.SetBuyTrigger, txn: int, now: int,
                         quote: Any) -> Reply | _Failure:
        trig = acct.buy_triggers.get(cmd.symbol)
        if trig is None:
            return _Failure(E.NO_BUY_AMOUNT, f"no SET_BUY_AMOUNT for {cmd.symbol}")
        if trig.reserved < cmd.price:
            return _Failure(E.AMOUNT_TOO_SMALL,
                            f"reserved {format_cents(trig.reserved)} is below the trigger price "
                            f"{format_cents(cmd.price)}")
        trig.price = cmd.price
        self._buy_trigger_changed(acct, cmd.symbol)
        self._update_armed(acct, cmd.symbol)
        return Reply(txn, "SET_BUY_TRIGGER", True, _buy_trigger_result(cmd.symbol, trig, acct))

    def _cancel_set_buy(self, acct: Account, cmd: c.CancelSetBuy, txn: int, now: int,
                        quote: Any) -> Reply | _Failure:
        trig = acct.buy_triggers.get(cmd.symbol)
        if trig is None:
            return _Failure(E.NO_BUY_AMOUNT, f"no SET_BUY_AMOUNT for {cmd.symbol}")
        del acct.buy_triggers[cmd.symbol]
        self._buy_trigger_changed(acct, cmd.symbol)
        self._update_armed(acct, cmd.symbol)
        acct.cash += trig.reserved
        self._cash_moved(acct, txn, now, "trigger_release", cmd.symbol, 0, None, trig.reserved)
        return Reply(txn, "CANCEL_SET_BUY", True, {
            "symbol": cmd.symbol, "released": format_cents(trig.reserved),
            "cash": format_cents(acct.cash)})

    def _set_sell_amount(self, acct: Account, cmd: c.SetSellAmount, txn: int, now: int,
                         quote: Any) -> Reply | _Failure:
        trig = acct.sell_triggers.get(cmd.symbol)
        back = trig.reserved_shares if trig is not None else 0
        free = acct.holdings.get(cmd.symbol, 0) + back
        if free < 1:
            return _Failure(E.NO_HOLDING, f"no shares of {cmd.symbol}")
        shares = 0
        if trig is not None and trig.price is not None:
            shares = cmd.amount // trig.price
            if shares == 0:
                return _Failure(E.AMOUNT_TOO_SMALL,
                                f"{format_cents(cmd.amount)} sells no share at the trigger price "
                                f"{format_cents(trig.price)}")
            if shares > free:
                return _Failure(E.INSUFFICIENT_SHARES,
                                f"{shares} shares of {cmd.symbol} needed, {free} held")
        if trig is None:
            trig = acct.sell_triggers[cmd.symbol] = SellTrigger(cmd.amount)
        else:
            trig.amount = cmd.amount
        self._sell_trigger_changed(acct, cmd.symbol)
        self._rereserve_shares(acct, trig, cmd.symbol, back, shares, txn, now)
        return Reply(txn, "SET_SELL_AMOUNT", True, _sell_trigger_result(cmd.symbol, trig, acct))

    def _set_sell_trigger(self, acct: Account, cmd: c.SetSellTrigger, txn: int, now: int,
                          quote: Any) -> Reply | _Failure:
        trig = acct.sell_triggers.get(cmd.symbol)
        if trig is None:
            return _Failure(E.NO_SELL_AMOUNT, f"no SET_SELL_AMOUNT for {cmd.symbol}")
        shares = trig.amount // cmd.price
        if shares == 0:
            return _Failure(E.AMOUNT_TOO_SMALL, f"{format_cents(trig.amount)} sells no share at "
                                                f"{format_cents(cmd.price)}")
        back = trig.reserved_shares
        free = acct.holdings.get(cmd.symbol, 0) + back
        if shares > free:
            return _Failure(E.INSUFFICIENT_SHARES,
                            f"{shares} shares of {cmd.symbol} needed, {free} held")
        trig.price = cmd.price
        self._sell_trigger_changed(acct, cmd.symbol)
        self._rereserve_shares(acct, trig, cmd.symbol, back, shares, txn, now)
        self._update_armed(acct, cmd.symbol)
        return Reply(txn, "SET_SELL_TRIGGER", True, _sell_trigger_result(cmd.symbol, trig, acct))

    def _rereserve_shares(self, acct: Account, trig: SellTrigger, symbol: str, back: int,
                          shares: int, txn: int, now: int) -> None:
        """Return the shares a sell trigger held, then hold `shares` (0: none) at its price."""
        held = acct.holdings.get(symbol, 0)
        if back:
            held += back
            self._record(acct, txn, now, "trigger_release", symbol, back, trig.price, 0)
        if shares:
            held -= shares
            self._record(acct, txn, now, "trigger_reserve", symbol, shares, trig.price, 0)
        acct.holdings[symbol] = held
        trig.reserved_shares = shares
        self._sell_trigger_changed(acct, symbol)

    def _cancel_set_sell(self, acct: Account, cmd: c.CancelSetSell, txn: int, now: int,
                         quote: Any) -> Reply | _Failure:
        trig = acct.sell_triggers.get(cmd.symbol)
        if trig is None:
            return _Failure(E.NO_SELL_AMOUNT, f"no SET_SELL_AMOUNT for {cmd.symbol}")
        del acct.sell_triggers[cmd.symbol]
        self._sell_trigger_changed(acct, cmd.symbol)
        self._update_armed(acct, cmd.symbol)
        held = acct.holdings.get(cmd.symbol, 0) + trig.reserved_shares
        if trig.reserved_shares:
            acct.holdings[cmd.symbol] = held
            self._record(acct, txn, now, "trigger_release", cmd.symbol, trig.reserved_shares,
                         trig.price, 0)
        return Reply(txn, "CANCEL_SET_SELL", True, {
            "symbol": cmd.symbol, "released_shares": trig.reserved_shares, "holding": held,
            "cash": format_cents(acct.cash)})

    def _display_summary(self, acct: Account, cmd: c.DisplaySummary, txn: int, now: int,
                         quote: Any) -> Reply:
        if cmd.before_txn is not None:
            return Reply(txn, "DISPLAY_SUMMARY", True, summary(acct, cmd.before_txn))
        buy_triggers, sell_triggers = self._trigger_tables(acct)
        return Reply(txn, "DISPLAY_SUMMARY", True, _summary(
            acct, self._newest_json(acct), buy_triggers, sell_triggers,
            self._holdings_shown(acct)))

    def _holdings_shown(self, acct: Account) -> dict[str, int]:
        """The holdings as DISPLAY_SUMMARY shows them (_holdings_json), sorted again only when
        the set of symbols changes. The sorted copy is compared with the live holdings at every
        call (one C-level dict comparison), so no change can be missed."""
        holdings = acct.holdings
        view = self._sorted_holdings.get(acct.user)
        if view is not None and view[0] is acct:
            ordered = view[1]
            if ordered != holdings:
                if ordered.keys() == holdings.keys():
                    ordered.update(holdings)  # same symbols: new counts, the order kept
                else:
                    ordered = None
        else:
            ordered = None
        if ordered is None:
            ordered = {symbol: holdings[symbol] for symbol in sorted(holdings)}
            self._sorted_holdings[acct.user] = (acct, ordered)
        if 0 in ordered.values():
            return {symbol: shares for symbol, shares in ordered.items() if shares}
        return ordered.copy()  # each reply its own dict: the cached one changes in place

    def _newest_json(self, acct: Account) -> list[dict[str, Any]]:
        """The 20 newest records as DISPLAY_SUMMARY shows them. Records never change once made,
        so only those added since the user's previous summary are rendered."""
        txs = acct.transactions
        n = len(txs)
        view = self._tx_views.get(acct.user)
        if view is not None and view[0] is acct and 0 < view[1] <= n and (
                txs[view[1] - 1] is view[2]):
            added = n - view[1]
            if added == 0:
                newest = view[3]
            elif added < SUMMARY_TRANSACTIONS:
                newest = [_tx_json(t) for t in reversed(txs[view[1]:])]
                newest += view[3][:SUMMARY_TRANSACTIONS - added]
            else:
                newest = [_tx_json(t) for t in txs[:-SUMMARY_TRANSACTIONS - 1:-1]]
        else:
            newest = [_tx_json(t) for t in txs[:-SUMMARY_TRANSACTIONS - 1:-1]]
        self._tx_views[acct.user] = (acct, n, txs[-1] if n else None, newest)
        return list(newest)

    def _trigger_tables(self, acct: Account) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Both trigger tables as DISPLAY_SUMMARY shows them (_trigger_tables_json), a table put
        together again only after a change, and only the changed triggers' rows rendered."""
        cached = self._tables.get(acct.user)
        if cached is None or cached[0] is not acct:
            cached = self._tables[acct.user] = [acct, None, None, {}, {}]
        buy_table = cached[1]
        if buy_table is None:
            buy_table = cached[1] = _table_of(acct.buy_triggers, cached[3], _buy_trigger_row)
        sell_table = cached[2]
        if sell_table is None:
            sell_table = cached[2] = _table_of(acct.sell_triggers, cached[4], _sell_trigger_row)
        return list(buy_table), list(sell_table)

    def _buy_trigger_changed(self, acct: Account, symbol: str) -> None:
        cached = self._tables.get(acct.user)
        if cached is not None:
            cached[1] = None
            cached[3].pop(symbol, None)

    def _sell_trigger_changed(self, acct: Account, symbol: str) -> None:
        cached = self._tables.get(acct.user)
        if cached is not None:
            cached[2] = None
            cached[4].pop(symbol, None)

    def _dumplog(self, acct: Account, cmd: c.DumpLog, txn: int, now: int,
                 quote: Any) -> DumpRequest:
        return DumpRequest(txn, cmd.user, cmd.filename)

    def _dumplog_all(self, cmd: c.DumpLog, txn: int, now: int) -> DumpRequest:
        self._events.append(AuditEvent(USER_COMMAND, txn, -1, now, self.server, None, "DUMPLOG",
                                       None, None, cmd.filename))
        return DumpRequest(txn, None, cmd.filename)

    # --- expiry -------------------------------------------------------------------------------

    def next_expiry(self) -> int | None:
        """When the earliest pending entry may expire (Unix ms), for the shard's timer."""
        return self._expiries[0][0] if self._expiries else None

    def expire_due(self, now: int, busy: Container[str] = ()) -> list[str]:
        """Release every pending entry whose 60 s are over at `now`, except those of the users in
        `busy` (a user whose queued commands were stamped earlier must have them judged first:
        the caller expires that user with `expire_user` once its queue is empty). Returns the
        users whose entries were released, in the order they were released."""
        expired: list[str] = []
        heap = self._expiries
        while heap and heap[0][0] <= now:
            _, user, _ = heapq.heappop(heap)
            if user in busy:
                continue
            acct = self.accounts.get(user)
            if acct is not None and self._expire_account(acct, now):
                expired.append(user)
        return expired

    def expire_user(self, user: str, now: int) -> int:
        """Release the user's pending entries whose 60 s are over at `now`; returns how many."""
        oldest = self._oldest_pending.get(user)
        if oldest is None or oldest > now - PENDING_LIFETIME_MS:
            return 0
        return self._expire_account(self.accounts[user], now)

    def _expire_account(self, acct: Account, now: int) -> int:
        count = 0
        cutoff = now - PENDING_LIFETIME_MS
        for stack, is_buy in ((acct.pending_buys, True), (acct.pending_sells, False)):
            # alive while created_at + 60 s > now; most stacks hold nothing expired
            for entry in stack:
                if entry.created_at <= cutoff:
                    break
            else:
                continue
            alive = []
            for entry in stack:
                if entry.expires_at > now:
                    alive.append(entry)
                    continue
                count += 1
                self._release(acct, entry, is_buy)
            stack[:] = alive
        self._note_oldest_pending(acct)
        return count

    def _track_pending(self, acct: Account, entry: Pending) -> None:
        """A new pending entry: due for expiry in 60 s, and the oldest of its user's if so."""
        oldest = self._oldest_pending.get(acct.user)
        if oldest is None or entry.created_at < oldest:
            self._oldest_pending[acct.user] = entry.created_at
        heapq.heappush(self._expiries, (entry.expires_at, acct.user, entry.txn))

    def _note_oldest_pending(self, acct: Account) -> None:
        oldest = None
        for stack in (acct.pending_buys, acct.pending_sells):
            for entry in stack:
                if oldest is None or entry.created_at < oldest:
                    oldest = entry.created_at
        if oldest is None:
            self._oldest_pending.pop(acct.user, None)
        else:
            self._oldest_pending[acct.user] = oldest

    def _release(self, acct: Account, entry: Pending, is_buy: bool) -> None:
        at = entry.expires_at
        if is_buy:
            cost = entry.shares * entry.price
            acct.cash += cost
            self._cash_moved(acct, entry.txn, at, "buy_release", entry.symbol, entry.shares,
                             entry.price, cost)
        else:
            held = acct.holdings.get(entry.symbol, 0) + entry.shares
            acct.holdings[entry.symbol] = held
            self._record(acct, entry.txn, at, "sell_release", entry.symbol, entry.shares,
                         entry.price, 0)
        self._pushes.append((acct.user, PushedEvent(PENDING_EXPIRED, {
            "user": acct.user, "side": "buy" if is_buy else "sell", "txn": entry.txn,
            "symbol": entry.symbol, "shares": entry.shares, "price": format_cents(entry.price),
            "cash": format_cents(acct.cash)})))

    # --- triggers -----------------------------------------------------------------------------

    def armed_symbols(self) -> dict[str, str]:
        """Each symbol with an armed trigger, and a user to ask the quote server in the name of."""
        if self._armed_owners is None:
            self._armed_owners = {sym: min(users) for sym, users in self._armed.items()}
        return dict(self._armed_owners)

    def _trigger_bounds(self, symbol: str, users: set[str]) -> tuple[int | None, int | None]:
        """(highest buy trigger price, lowest sell trigger price) armed on `symbol`."""
        bounds = self._bounds.get(symbol)
        if bounds is None:
            highest_buy = lowest_sell = None
            for user in users:
                acct = self.accounts[user]
                b = acct.buy_triggers.get(symbol)
                if b is not None and b.price is not None and (
                        highest_buy is None or b.price > highest_buy):
                    highest_buy = b.price
                t = acct.sell_triggers.get(symbol)
                if t is not None and t.price is not None and t.reserved_shares and (
                        lowest_sell is None or t.price < lowest_sell):
                    lowest_sell = t.price
            bounds = self._bounds[symbol] = (highest_buy, lowest_sell)
        return bounds

    def crossings(self, quote: PriceQuote, now: int) -> list[tuple[str, bool]]:
        """The triggers `quote` fires at `now`, in firing order: (user, True for buy)."""
        users = self._armed.get(quote.symbol)
        if not users or not quote.usable_at(now):
            return []
        price = quote.price
        highest_buy, lowest_sell = self._trigger_bounds(quote.symbol, users)
        if (highest_buy is None or price > highest_buy) and (
                lowest_sell is None or price < lowest_sell):
            return []  # the common case: the quote crosses no trigger on its symbol
        crossed = []
        for user in sorted(users):
            acct = self.accounts[user]
            btrig = acct.buy_triggers.get(quote.symbol)
            if btrig is not None and btrig.price is not None and price <= btrig.price:
                crossed.append((user, True))
            strig = acct.sell_triggers.get(quote.symbol)
            if (strig is not None and strig.price is not None and strig.reserved_shares
                    and price >= strig.price):
                crossed.append((user, False))
        return crossed

    def fire_triggers(self, quote: PriceQuote, now: int, txns: Iterable[int]) -> list[str]:
        """Fire the triggers `quote` crosses (`crossings`), each under the next txn of `txns`,
        as many as there are txns; returns the owners, one per firing.

        A fresh (quote-server hit) quote is audited under the first firing's txn; when nothing
        fires the caller audits it with `audit_quote_hit`.
        """
        fired: list[str] = []
        symbol = quote.symbol
        for (user, is_buy), txn in zip(self.crossings(quote, now), txns):
            acct = self.accounts[user]
            if not fired and quote.fresh:
                self._emit_quote(acct, txn, now, "SET_BUY_TRIGGER" if is_buy
                                 else "SET_SELL_TRIGGER", quote)
            if is_buy:
                self._fill_buy(acct, symbol, acct.buy_triggers[symbol], quote.price, txn, now)
            else:
                self._fill_sell(acct, symbol, acct.sell_triggers[symbol], quote.price, txn, now)
            self._update_armed(acct, symbol)
            fired.append(user)
        return fired

    def audit_quote_hit(self, quote: PriceQuote, now: int, txn: int) -> None:
        """Audit a real quote-server hit made for the sweep when it fired nothing."""
        acct = self.accounts.get(quote.user)
        if acct is not None:
            self._emit_quote(acct, txn, now, "QUOTE", quote)
        else:
            self._events.append(_quote_event(self.server, txn, -1, now, quote.user, "QUOTE", quote))

    def _fill_buy(self, acct: Account, symbol: str, trig: BuyTrigger, price: int, txn: int,
                  now: int) -> None:
        shares = trig.reserved // price
        spent = shares * price
        refund = trig.reserved - spent
        del acct.buy_triggers[symbol]
        self._tables.pop(acct.user, None)  # its trigger tables change
        acct.holdings[symbol] = acct.holdings.get(symbol, 0) + shares
        self._emit(acct, SYSTEM_EVENT, txn, now, "SET_BUY_TRIGGER", symbol, spent)
        acct.cash += refund
        self._record(acct, txn, now, "trigger_fill", symbol, shares, price, refund)
        if refund:
            self._emit(acct, ACCOUNT_TRANSACTION, txn, now, None, None, refund, action="add")
        self._pushes.append((acct.user, PushedEvent(TRIGGER_FIRED, {
            "user": acct.user, "txn": txn, "side": "buy", "symbol": symbol, "shares": shares,
            "price": format_cents(price), "amount": format_cents(spent),
            "refund": format_cents(refund), "cash": format_cents(acct.cash)})))

    def _fill_sell(self, acct: Account, symbol: str, trig: SellTrigger, price: int, txn: int,
                   now: int) -> None:
        shares = trig.reserved_shares
        proceeds = shares * price
        del acct.sell_triggers[symbol]
        self._tables.pop(acct.user, None)  # its trigger tables change
        self._emit(acct, SYSTEM_EVENT, txn, now, "SET_SELL_TRIGGER", symbol, proceeds)
        acct.cash += proceeds
        self._cash_moved(acct, txn, now, "trigger_fill", symbol, -shares, price, proceeds)
        self._pushes.append((acct.user, PushedEvent(TRIGGER_FIRED, {
            "user": acct.user, "txn": txn, "side": "sell", "symbol": symbol, "shares": shares,
            "price": format_cents(price), "amount": format_cents(proceeds),
            "cash": format_cents(acct.cash)})))

    def _update_armed(self, acct: Account, symbol: str) -> None:
        self._armed_owners = None
        self._bounds.pop(symbol, None)
        b = acct.buy_triggers.get(symbol)
        s = acct.sell_triggers.get(symbol)
        armed = (b is not None and b.price is not None) or (
            s is not None and s.price is not None and s.reserved_shares > 0)
        users = self._armed.get(symbol)
        if armed:
            if users is None:
                self._armed[symbol] = {acct.user}
            else:
                users.add(acct.user)
        elif users is not None:
            users.discard(acct.user)
            if not users:
                del self._armed[symbol]

    # --- effects ------------------------------------------------------------------------------

    def drain(self) -> Effects:
        """Take the events accumulated since the last drain."""
        effects = Effects(self._events, self._pushes)
        self._events = []
        self._pushes = []
        return effects

    def has_effects(self) -> bool:
        return bool(self._events or self._pushes)

    # --- audit helpers ------------------------------------------------------------------------

    def _emit(self, acct: Account, kind: str, txn: int, now: int, command: str | None = None,
              symbol: str | None = None, funds: int | None = None, filename: str | None = None,
              message: str | None = None, action: str | None = None) -> None:
        seq = acct.event_seq = acct.event_seq + 1
        self._events.append(_new_tuple(AuditEvent, (
            kind, txn, seq, now, self.server, acct.user, command, symbol, funds, filename, None,
            None, None, action, message)))

    def _user_command(self, acct: Account, cmd: c.TradingCommand, txn: int, now: int,
                      audit: tuple[Any, Any, Any] | None = None) -> None:
        seq = acct.event_seq = acct.event_seq + 1
        symbol, funds, filename = _audit_fields(cmd) if audit is None else audit
        self._events.append(_new_tuple(AuditEvent, (
            USER_COMMAND, txn, seq, now, self.server, acct.user, cmd.NAME, symbol, funds,
            filename, None, None, None, None, None)))

    def _emit_quote(self, acct: Account, txn: int, now: int, command: str,
                    quote: PriceQuote) -> None:
        seq = acct.event_seq = acct.event_seq + 1
        self._events.append(_quote_event(self.server, txn, seq, now, acct.user, command, quote))

    def _record(self, acct: Account, txn: int, now: int, kind: str, symbol: str | None,
                shares: int, price: int | None, cash_delta: int) -> None:
        acct.transactions.append(_new_tuple(TxRecord, (txn, now, kind, symbol, shares, price,
                                                       cash_delta)))

    def _cash_moved(self, acct: Account, txn: int, now: int, kind: str, symbol: str | None,
                    shares: int, price: int | None, cash_delta: int) -> None:
        """Record a change of cash and audit it as an accountTransaction."""
        acct.transactions.append(_new_tuple(TxRecord, (txn, now, kind, symbol, shares, price,
                                                       cash_delta)))
        seq = acct.event_seq = acct.event_seq + 1
        self._events.append(_new_tuple(AuditEvent, (
            ACCOUNT_TRANSACTION, txn, seq, now, self.server, acct.user, None, None,
            abs(cash_delta), None, None, None, None, "add" if cash_delta > 0 else "remove",
            None)))


# --- module helpers ---------------------------------------------------------------------------

#: Passed as the quote when none could be had: the command then fails `quote_unavailable`.
_UNAVAILABLE = PriceQuote("", 1, 0, "", "")


def quote_unavailable() -> PriceQuote:
    """The marker quote meaning "the quote service could not answer in time"."""
    return _UNAVAILABLE


def _buy_precheck(acct: Account, cmd: c.Buy) -> _Failure | None:
    if acct.cash < cmd.amount:
        return _Failure(E.INSUFFICIENT_FUNDS,
                        f"BUY needs {format_cents(cmd.amount)}, cash is {format_cents(acct.cash)}")
    return None


def _sell_precheck(acct: Account, cmd: c.Sell) -> _Failure | None:
    if acct.holdings.get(cmd.symbol, 0) == 0:
        return _Failure(E.INSUFFICIENT_SHARES, f"no free shares of {cmd.symbol} to sell")
    return None


#: Commands that need a quote, and the checks they pass before one is fetched.
_QUOTED = frozenset({c.Quote, c.Buy, c.Sell})
_PRECHECKS: dict[type, Callable[[Account, Any], _Failure | None]] = {
    c.Buy: _buy_precheck, c.Sell: _sell_precheck}


def _funds_of(cmd: c.TradingCommand) -> int | None:
    amount = getattr(cmd, "amount", None)
    return amount if amount is not None else getattr(cmd, "price", None)


#: NamedTuple construction goes through a Python-level __new__; the engine makes several
#: events and records per command, so it builds them as tuples of all their fields.
_new_tuple = tuple.__new__
_set_need_symbol = NeedQuote.symbol.__set__  # type: ignore[attr-defined]
_set_need_user = NeedQuote.user.__set__  # type: ignore[attr-defined]


def _need_quote(symbol: str, user: str) -> NeedQuote:
    """NeedQuote(symbol, user) without the frozen dataclass __init__ (a third of commands)."""
    need = object.__new__(NeedQuote)
    _set_need_symbol(need, symbol)
    _set_need_user(need, user)
    return need


def _audit_fields_reader(cls: type) -> Callable[[Any], tuple[Any, Any, Any]]:
    """Read (symbol, funds, filename) of an audited command of class `cls`."""
    names = {f.name for f in fields(cls)}
    get_symbol = attrgetter("symbol") if "symbol" in names else None
    get_funds = (attrgetter("amount") if "amount" in names
                 else attrgetter("price") if "price" in names else None)
    get_filename = attrgetter("filename") if "filename" in names else None
    if get_filename is not None:
        return lambda cmd: (None, None, get_filename(cmd))
    if get_symbol is not None and get_funds is not None:
        return lambda cmd: (get_symbol(cmd), get_funds(cmd), None)
    if get_symbol is not None:
        return lambda cmd: (get_symbol(cmd), None, None)
    if get_funds is not None:
        return lambda cmd: (None, get_funds(cmd), None)
    return lambda cmd: (None, None, None)


_AUDIT_FIELDS = {cls: _audit_fields_reader(cls) for cls in c.TRADING_COMMANDS}


def _audit_fields(cmd: c.TradingCommand) -> tuple[Any, Any, Any]:
    """(symbol, funds, filename) of a command for its audit events."""
    reader = _AUDIT_FIELDS.get(type(cmd))
    if reader is None:
        return getattr(cmd, "symbol", None), _funds_of(cmd), getattr(cmd, "filename", None)
    return reader(cmd)


def _quote_event(server: str, txn: int, seq: int, now: int, user: str | None, command: str,
                 quote: PriceQuote) -> AuditEvent:
    if quote.fresh:
        return _new_tuple(AuditEvent, (
            QUOTE_SERVER, txn, seq, now, server, quote.user, None, quote.symbol, None, None,
            quote.price, quote.quote_time, quote.cryptokey, None, None))
    return _new_tuple(AuditEvent, (
        DEBUG_EVENT, txn, seq, now, server, user, command, quote.symbol, None, None, None, None,
        None, None, f"cached quote {quote.symbol} {format_cents(quote.price)} "
                    f"quoteServerTime {quote.quote_time} cryptokey {quote.cryptokey}"))


def _quote_reply(txn: int, now: int, quote: PriceQuote) -> Reply:
    return Reply(txn, "QUOTE", True, {
        "symbol": quote.symbol, "price": format_cents(quote.price), "quote_time": quote.quote_time,
        "cryptokey": quote.cryptokey, "age_ms": max(0, now - quote.quote_time)})


def _buy_trigger_result(symbol: str, trig: BuyTrigger, acct: Account) -> dict[str, Any]:
    return {"symbol": symbol, "reserved": format_cents(trig.reserved),
            "trigger_price": None if trig.price is None else format_cents(trig.price),
            "cash": format_cents(acct.cash)}


def _sell_trigger_result(symbol: str, trig: SellTrigger, acct: Account) -> dict[str, Any]:
    return {"symbol": symbol, "amount": format_cents(trig.amount),
            "trigger_price": None if trig.price is None else format_cents(trig.price),
            "reserved_shares": trig.reserved_shares, "holding": acct.holdings.get(symbol, 0),
            "cash": format_cents(acct.cash)}


def _tx_json(t: TxRecord) -> dict[str, Any]:
    txn, time, kind, symbol, shares, price, cash_delta = t
    return {"txn": txn, "time": time, "kind": kind, "symbol": symbol, "shares": shares,
            "price": None if price is None else format_cents(price),
            "cash_delta": format_cents(cash_delta)}


def summary(acct: Account, before_txn: int | None = None) -> dict[str, Any]:
    """DISPLAY_SUMMARY's result for one account."""
    return _summary(acct, _transactions_json(acct, before_txn), *_trigger_tables_json(acct))


def _transactions_json(acct: Account, before_txn: int | None) -> list[dict[str, Any]]:
    """The 20 newest records (older than `before_txn` when given), newest first."""
    if before_txn is None:
        newest = [_tx_json(t) for t in acct.transactions[:-SUMMARY_TRANSACTIONS - 1:-1]]
    else:
        newest = []
        for t in reversed(acct.transactions):
            if t.txn >= before_txn:
                continue
            newest.append(_tx_json(t))
            if len(newest) == SUMMARY_TRANSACTIONS:
                break
    return newest


def _table_of(triggers: dict[str, Any], rows: dict[str, dict[str, Any]],
              render: Callable[[str, Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """A trigger table in symbol order, rendering only the rows not kept in `rows`."""
    table = []
    for symbol in sorted(triggers):
        row = rows.get(symbol)
        if row is None:
            row = rows[symbol] = render(symbol, triggers[symbol])
        table.append(row)
    return table


def _trigger_tables_json(acct: Account) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    buy = [_buy_trigger_row(s, t) for s, t in sorted(acct.buy_triggers.items())]
    sell = [_sell_trigger_row(s, t) for s, t in sorted(acct.sell_triggers.items())]
    return buy, sell


def _buy_trigger_row(symbol: str, t: BuyTrigger) -> dict[str, Any]:
    return {"symbol": symbol, "reserved": format_cents(t.reserved),
            "trigger_price": None if t.price is None else format_cents(t.price)}


def _sell_trigger_row(symbol: str, t: SellTrigger) -> dict[str, Any]:
    return {"symbol": symbol, "amount": format_cents(t.amount),
            "trigger_price": None if t.price is None else format_cents(t.price),
            "reserved_shares": t.reserved_shares}


def _summary(acct: Account, newest: list[dict[str, Any]], buy_triggers: list[dict[str, Any]],
             sell_triggers: list[dict[str, Any]],
             holdings: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "user": acct.user,
        "cash": format_cents(acct.cash),
        "holdings": _holdings_json(acct.holdings) if holdings is None else holdings,
        "pending_buys": [_pending_json(p) for p in reversed(acct.pending_buys)],
        "pending_sells": [_pending_json(p) for p in reversed(acct.pending_sells)],
        "buy_triggers": buy_triggers,
        "sell_triggers": sell_triggers,
        "transactions": newest,
        "transactions_total": len(acct.transactions),
    }


def _holdings_json(holdings: dict[str, int]) -> dict[str, int]:
    """Free shares by symbol, sorted, without the zeros (sorting the keys beats the items)."""
    shown = {}
    for symbol in sorted(holdings):
        shares = holdings[symbol]
        if shares:
            shown[symbol] = shares
    return shown


def _pending_json(p: Pending) -> dict[str, Any]:
    return {"txn": p.txn, "symbol": p.symbol, "shares": p.shares, "price": format_cents(p.price),
            "expires_at": p.expires_at}


def replies_of(outcomes: Iterable[Outcome]) -> list[Reply]:
    """The replies among outcomes (tests and replays)."""
    return [o for o in outcomes if isinstance(o, Reply)]
