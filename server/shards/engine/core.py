"""The Engine: one shard's accounts, and the parts that apply COMMANDS.md's rules to them, wired.

Time (`now`, Unix ms) and quotes come in as arguments; the engine answers with a `Reply` (or asks
for what it lacks: `NeedQuote`, `DumpRequest`) and collects audit events and pushed events, which
the caller takes with `drain()`. The engine knows nothing of how it is stored: the shard
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

from collections.abc import Callable, Container, Iterable
from typing import Any

from protocol import commands as c
from protocol.errors import ErrorCode
from protocol.quote import PriceQuote
from protocol.replies import Reply
from server.shards.account import Account
from server.shards.engine import funds, orders, reads, triggers
from server.shards.engine.audit import NO_FIELDS, AuditFields, AuditRecorder, Effects
from server.shards.engine.expiry import ExpiryQueue
from server.shards.engine.idempotency import stored_reply
from server.shards.engine.outcomes import (
    UNAVAILABLE,
    NeedQuote,
    Outcome,
    Refused,
)
from server.shards.engine.summary import SummaryView
from server.shards.engine.trigger_book import TriggerBook

#: A command's rule: (account, command, txn, now, quote, audit) -> its reply; raises Refused.
Rule = Callable[..., Outcome]
#: Checks a quoted command passes before a quote is fetched; raises Refused.
Precheck = Callable[[Account, Any], None]
#: What the engine updates after a command succeeded: (account, command) -> None.
AfterSuccess = Callable[[Account, Any], None]


class Engine:
    """The trading state of one shard's users and the rules that change it."""

    def __init__(self, server: str = "shard-0") -> None:
        self.server = server
        self.accounts: dict[str, Account] = {}
        self._audit = AuditRecorder(server)
        self._expiries = ExpiryQueue()
        self._triggers = TriggerBook(self.accounts)
        self._summaries = SummaryView()
        # command class -> (rule, needs a quote, check before the quote, update after success)
        self._rules: dict[type, tuple[Rule, bool, Precheck | None, AfterSuccess | None]] = {
            c.Add: (funds.add, False, None, None),
            c.Quote: (reads.quote, True, None, None),
            c.Buy: (orders.buy, True, orders.check_buy_funds, self._buy_placed),
            c.CommitBuy: (orders.commit_buy, False, None, None),
            c.CancelBuy: (orders.cancel_buy, False, None, None),
            c.Sell: (orders.sell, True, orders.check_free_shares, self._sell_placed),
            c.CommitSell: (orders.commit_sell, False, None, None),
            c.CancelSell: (orders.cancel_sell, False, None, None),
            c.SetBuyAmount: (triggers.set_buy_amount, False, None, self._buy_trigger_changed),
            c.SetBuyTrigger: (triggers.set_buy_trigger, False, None, self._buy_trigger_changed),
            c.CancelSetBuy: (triggers.cancel_set_buy, False, None, self._buy_trigger_changed),
            c.SetSellAmount: (triggers.set_sell_amount, False, None,
                              self._sell_trigger_changed),
            c.SetSellTrigger: (triggers.set_sell_trigger, False, None,
                               self._sell_trigger_changed),
            c.CancelSetSell: (triggers.cancel_set_sell, False, None,
                              self._sell_trigger_changed),
            c.DisplaySummary: (self._display_summary, False, None, None),
            c.DumpLog: (reads.dumplog, False, None, None),
        }

    # --- accounts ---------------------------------------------------------------------------

    def load(self, account: Account) -> None:
        """Adopt an account from a snapshot (its pending entries and triggers included)."""
        self.accounts[account.user] = account
        self._expiries.load(account)
        self._triggers.load(account)

    def open_account(self, user: str, now: int) -> bool:
        """Create an empty account (sign-up by LOGIN). False if it already exists."""
        if user in self.accounts:
            return False
        self.accounts[user] = Account(user)
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
        rule, quoted, precheck, after_success = self._rules[type(cmd)]
        user = cmd.user
        acct = self.accounts.get(user)
        if acct is None:
            if type(cmd) is not c.Add:
                return self._execute_without_account(cmd, txn, now, quote)
            acct = self.accounts[user] = Account(user)
        elif self._expiries.may_have_expired(user, now):
            self._expire(acct, now)
        if cmd.STATE_CHANGING and txn <= acct.last_txn:
            return self._retry(acct, cmd, txn, now)
        if quoted:
            if precheck is not None:
                try:
                    precheck(acct, cmd)
                except Refused as refusal:
                    return self._refuse(acct, cmd, txn, now, cmd.audit_fields(), refusal,
                                        False)
            if not _usable(quote, cmd.symbol, now):
                return NeedQuote(cmd.symbol, user)
        fields = cmd.audit_fields()
        self._audit.command(acct, txn, now, cmd.NAME, fields)
        try:
            if quoted:
                if quote is UNAVAILABLE:
                    raise _no_quote(cmd.symbol)
                self._audit.quote(acct, txn, now, cmd.NAME, quote)
            reply = rule(acct, cmd, txn, now, quote, self._audit)
        except Refused as refusal:
            return self._refuse(acct, cmd, txn, now, fields, refusal, True)
        if after_success is not None:
            after_success(acct, cmd)
        if cmd.STATE_CHANGING:
            acct.answered(txn, cmd, reply)
        return reply

    def reject(self, command: str | None, user: str | None, txn: int, now: int, code: ErrorCode,
               message: str) -> Reply:
        """Audit a trading-command line that failed validation (the rejected field is only quoted
        in `message`) and return its error reply. Changes no state."""
        acct = self.accounts.get(user) if user is not None else None
        if command is not None:
            if acct is not None:
                self._audit.command(acct, txn, now, command)
                self._audit.error(acct, txn, now, command, NO_FIELDS, message)
            else:
                self._audit.refused_without_account(user, txn, now, command, NO_FIELDS, message)
        return Reply(txn, command, False, None, code, message)

    def _execute_without_account(self, cmd: c.TradingCommand, txn: int, now: int,
                                 quote: PriceQuote | None) -> Outcome:
        """QUOTE and the all-users DUMPLOG need no account; every other command fails."""
        if type(cmd) is c.Quote:
            if not _usable(quote, cmd.symbol, now):
                return NeedQuote(cmd.symbol, cmd.user)
            if quote is UNAVAILABLE:
                return self._refuse_without_account(cmd, txn, now, _no_quote(cmd.symbol))
            self._audit.quote_without_account(cmd.user, txn, now, quote)
            return reads.quote(None, cmd, txn, now, quote)
        if type(cmd) is c.DumpLog and cmd.user is None:
            self._audit.dumplog_of_all(txn, now, cmd.filename)
            return reads.dumplog(None, cmd, txn, now, quote)
        return self._refuse_without_account(cmd, txn, now, Refused(
            ErrorCode.UNKNOWN_USER, f"no account for user {cmd.user}"))

    def _retry(self, acct: Account, cmd: c.TradingCommand, txn: int, now: int) -> Reply:
        """A state-changing command whose txn is not above the user's last: the stored reply
        of the same line under that txn, or `stale_txn` (not stored: it changes nothing)."""
        reply = stored_reply(acct, cmd, txn)
        if reply is not None:
            return reply
        fields = cmd.audit_fields()
        message = (f"txn {txn} is not above {acct.last_txn}, the last one applied for "
                   f"{acct.user}, and is not a retry of a stored command")
        self._audit.command(acct, txn, now, cmd.NAME, fields)
        self._audit.error(acct, txn, now, cmd.NAME, fields, message)
        return Reply(txn, cmd.NAME, False, None, ErrorCode.STALE_TXN, message)

    def _refuse(self, acct: Account, cmd: c.TradingCommand, txn: int, now: int,
                fields: AuditFields, refusal: Refused, command_audited: bool) -> Reply:
        """A rule said no: audited, and stored like a success when the command changes state."""
        code, message = refusal.args
        if not command_audited:
            self._audit.command(acct, txn, now, cmd.NAME, fields)
        self._audit.error(acct, txn, now, cmd.NAME, fields, message)
        reply = Reply(txn, cmd.NAME, False, None, code, message)
        if cmd.STATE_CHANGING:
            acct.answered(txn, cmd, reply)
        return reply

    def _refuse_without_account(self, cmd: c.TradingCommand, txn: int, now: int,
                                refusal: Refused) -> Reply:
        """Audited, but there is no account to store it in."""
        self._audit.refused_without_account(cmd.user, txn, now, cmd.NAME, cmd.audit_fields(),
                                            refusal.message)
        return Reply(txn, cmd.NAME, False, None, refusal.code, refusal.message)

    def _display_summary(self, acct: Account, cmd: c.DisplaySummary, txn: int, now: int,
                         quote: Any, audit: AuditRecorder) -> Reply:
        return Reply(txn, "DISPLAY_SUMMARY", True, self._summaries.render(acct, cmd.before_txn))

    # --- what a success changes besides the account -------------------------------------------

    def _buy_placed(self, acct: Account, cmd: c.Buy) -> None:
        self._expiries.add(acct.user, acct.pending_buys[-1])

    def _sell_placed(self, acct: Account, cmd: c.Sell) -> None:
        self._expiries.add(acct.user, acct.pending_sells[-1])

    def _buy_trigger_changed(self, acct: Account, cmd: c.TradingCommand) -> None:
        self._summaries.trigger_changed(acct.user, cmd.symbol, buy=True)
        self._triggers.update(acct, cmd.symbol)

    def _sell_trigger_changed(self, acct: Account, cmd: c.TradingCommand) -> None:
        self._summaries.trigger_changed(acct.user, cmd.symbol, buy=False)
        self._triggers.update(acct, cmd.symbol)

    # --- expiry -------------------------------------------------------------------------------

    def next_expiry(self) -> int | None:
        """When the earliest pending entry may expire (Unix ms), for the shard's timer."""
        return self._expiries.next_due()

    def expire_due(self, now: int, busy: Container[str] = ()) -> list[str]:
        """Release every pending entry whose 60 s are over at `now`, except those of the users in
        `busy` (a user whose queued commands were stamped earlier must have them judged first:
        the caller expires that user with `expire_user` once its queue is empty). Returns the
        users whose entries were released, in the order they were released."""
        expired: list[str] = []
        for user in self._expiries.pop_due(now):
            if user in busy:
                continue
            acct = self.accounts.get(user)
            if acct is not None and self._expire(acct, now):
                expired.append(user)
        return expired

    def expire_user(self, user: str, now: int) -> int:
        """Release the user's pending entries whose 60 s are over at `now`; returns how many."""
        if not self._expiries.may_have_expired(user, now):
            return 0
        return self._expire(self.accounts[user], now)

    def _expire(self, acct: Account, now: int) -> int:
        count = orders.expire_pending(acct, now, self._audit)
        self._expiries.settled(acct)
        return count

    # --- triggers -----------------------------------------------------------------------------

    def armed_symbols(self) -> dict[str, str]:
        """Each symbol with an armed trigger, and a user to ask the quote server in the name of."""
        return self._triggers.armed_symbols()

    def crossings(self, quote: PriceQuote, now: int) -> list[tuple[str, bool]]:
        """The triggers `quote` fires at `now`, in firing order: (user, True for buy)."""
        return self._triggers.crossings(quote, now)

    def fire_triggers(self, quote: PriceQuote, now: int, txns: Iterable[int]) -> list[str]:
        """Fire the triggers `quote` crosses (`crossings`), each under the next txn of `txns`,
        as many as there are txns; returns the owners, one per firing.

        A fresh (quote-server hit) quote is audited under the first firing's txn; when nothing
        fires the caller audits it with `audit_quote_hit`.
        """
        fired: list[str] = []
        symbol = quote.symbol
        for (user, is_buy), txn in zip(self._triggers.crossings(quote, now), txns):
            acct = self.accounts[user]
            if not fired and quote.fresh:
                self._audit.quote(acct, txn, now, "SET_BUY_TRIGGER" if is_buy
                                  else "SET_SELL_TRIGGER", quote)
            fill = triggers.fill_buy if is_buy else triggers.fill_sell
            fill(acct, symbol, quote.price, txn, now, self._audit)
            self._summaries.triggers_fired(user)
            self._triggers.update(acct, symbol)
            fired.append(user)
        return fired

    def audit_quote_hit(self, quote: PriceQuote, now: int, txn: int) -> None:
        """Audit a real quote-server hit made for the sweep when it fired nothing."""
        acct = self.accounts.get(quote.user)
        if acct is not None:
            self._audit.quote(acct, txn, now, "QUOTE", quote)
        else:
            self._audit.quote_hit_without_account(txn, now, quote)

    # --- effects ------------------------------------------------------------------------------

    def drain(self) -> Effects:
        """Take the events collected since the last drain."""
        return self._audit.drain()

    def has_effects(self) -> bool:
        return self._audit.has_effects()


def _usable(quote: PriceQuote | None, symbol: str, now: int) -> bool:
    """A quote the command may run with: the unavailable marker (it fails), or a quote of its
    symbol still usable at `now`."""
    return quote is not None and (quote is UNAVAILABLE or (
        quote.symbol == symbol and quote.usable_at(now)))


def _no_quote(symbol: str) -> Refused:
    return Refused(ErrorCode.QUOTE_UNAVAILABLE, f"no quote for {symbol} could be had")
