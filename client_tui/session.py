"""The trading conversation: which requests each user action sends, and how replies fold into the
AccountStore. Plain async code over the Connection; the screens run it in Textual workers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from client_tui.clock import Clock
from client_tui.connection import Connection, Outcome
from client_tui.model.quotes import QuoteSample, parse_quote
from client_tui.model.store import AccountStore
from client_tui.model.summary import ReplyShapeError, Transaction, cents, parse_summary
from client_tui.model.triggers import plan
from protocol import commands as c

#: DISPLAY_SUMMARY returns this many transactions per page.
PAGE = 20
#: Older pages fetched per refresh at most, so a long history loads in steps.
PAGES_PER_REFRESH = 25

#: (action, side) -> the command that settles the newest pending order of that side.
SETTLE_COMMANDS: dict[tuple[str, str], type[c.CommitBuy | c.CancelBuy | c.CommitSell
                                            | c.CancelSell]] = {
    ("commit", "buy"): c.CommitBuy, ("cancel", "buy"): c.CancelBuy,
    ("commit", "sell"): c.CommitSell, ("cancel", "sell"): c.CancelSell,
}


class TradingSession:
    """One logged-in user's requests; every method returns the Outcome(s) and never raises."""

    def __init__(self, connection: Connection, store: AccountStore, clock: Clock,
                 on_change: Callable[[], object] | None = None) -> None:
        self.connection = connection
        self.store = store
        self.clock = clock
        #: Called after every change to the store (the app redraws).
        self.on_change = on_change or (lambda: None)

    @property
    def user(self) -> str:
        return self.store.user

    # --- reads ----------------------------------------------------------------------------

    async def refresh_summary(self) -> Outcome:
        """DISPLAY_SUMMARY; newer transactions merge into the history (older pages as needed)."""
        outcome = await self.connection.request(c.DisplaySummary(self.user).line())
        if not outcome.ok:
            return outcome
        try:
            summary = parse_summary(outcome.result)
        except ReplyShapeError as exc:
            return Outcome.failed(outcome.line, "bad_reply", str(exc), outcome.latency_ms)
        fresh = self.store.apply_summary(summary)
        self.on_change()
        if fresh and fresh == len(summary.transactions) == PAGE:
            await self.load_older(summary.transactions)
            self.on_change()
        return outcome

    async def load_older(self, page: Sequence[Transaction]) -> Outcome | None:
        """Page back (before_txn) while pages bring only unseen transactions."""
        history = self.store.history
        last: Outcome | None = None
        for _ in range(PAGES_PER_REFRESH):
            before = history.oldest_txn(page)
            if before is None or history.complete:
                break
            last = await self.connection.request(c.DisplaySummary(self.user, before).line())
            if not last.ok:
                break
            try:
                older = parse_summary(last.result)
            except ReplyShapeError as exc:
                return Outcome.failed(last.line, "bad_reply", str(exc), last.latency_ms)
            fresh = history.merge(older.transactions, older.transactions_total)
            if fresh < len(older.transactions) or len(older.transactions) < PAGE:
                break
            page = older.transactions
        return last

    async def quote(self, symbol: str) -> tuple[Outcome, QuoteSample | None]:
        outcome = await self.connection.request(c.Quote(self.user, symbol).line())
        if not outcome.ok:
            if outcome.code not in ("offline", "connection_lost"):
                self.store.quote_errors[symbol] = outcome.code
            return outcome, None
        try:
            sample = parse_quote(outcome.result, self.clock.now_ms())
        except ReplyShapeError as exc:
            return Outcome.failed(outcome.line, "bad_reply", str(exc), outcome.latency_ms), None
        self.store.quotes.record(sample)
        self.store.quote_errors.pop(symbol, None)
        self.on_change()
        return outcome, sample

    async def refresh_quotes(self, symbols: Sequence[str] | None = None,
                             force: bool = False) -> list[Outcome]:
        """QUOTE every symbol in play whose quote is due (`force`: all of them), pipelined."""
        now = self.clock.now_ms()
        wanted = self.store.symbols_in_play() if symbols is None else list(symbols)
        due = [s for s in wanted if force or self.store.quotes.due(s, now)]
        results = await asyncio.gather(*(self.quote(s) for s in due))
        return [outcome for outcome, _ in results]

    async def quote_unseen(self, symbols: Sequence[str] | None = None) -> list[Outcome]:
        """QUOTE the symbols in play (or `symbols`) never asked for in this session."""
        wanted = self.store.symbols_in_play() if symbols is None else list(symbols)
        unseen = [s for s in wanted if not self.store.quotes.asked(s)]
        results = await asyncio.gather(*(self.quote(s) for s in unseen))
        return [outcome for outcome, _ in results]

    # --- changes --------------------------------------------------------------------------

    async def execute(self, line: str, refresh: bool = True) -> Outcome:
        """A state-changing request: the reply's cash shows at once, then the summary follows."""
        outcome = await self.connection.request(line)
        if outcome.ok and isinstance(outcome.result.get("cash"), str):
            try:
                self.store.set_cash(cents(outcome.result["cash"]))
            except ReplyShapeError:
                pass  # the summary that follows carries the cash anyway
            self.on_change()
        if refresh and outcome.code not in ("offline",):
            await self.refresh_summary()
        return outcome

    async def add_funds(self, amount: int) -> Outcome:
        return await self.execute(c.Add(self.user, amount).line())

    async def place(self, side: str, symbol: str, amount: int) -> Outcome:
        """BUY or SELL `amount` cents of `symbol`: a pending order that expires in 60 s."""
        order = c.Buy if side == "buy" else c.Sell
        return await self.execute(order(self.user, symbol, amount).line())

    async def settle(self, action: str, side: str) -> Outcome:
        """COMMIT or CANCEL the newest pending order of `side`."""
        return await self.execute(SETTLE_COMMANDS[action, side](self.user).line())

    async def set_trigger(self, side: str, symbol: str, amount: int, price: int) -> list[Outcome]:
        """Reserve and arm (or edit) a trigger; stops at the first failure."""
        outcomes = []
        for line in plan(side, self.user, symbol, amount, price, self.store.summary):
            outcome = await self.execute(line, refresh=False)
            outcomes.append(outcome)
            if not outcome.ok:
                break
        await self.refresh_summary()
        return outcomes

    async def cancel_trigger(self, side: str, symbol: str) -> Outcome:
        cancel = c.CancelSetBuy if side == "buy" else c.CancelSetSell
        return await self.execute(cancel(self.user, symbol).line())
