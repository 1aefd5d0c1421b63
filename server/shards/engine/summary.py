"""DISPLAY_SUMMARY's result for an account, rendering again only what changed since the user's
last summary (a fifth of a workload's commands are summaries of a growing history)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocol.money import format_cents
from server.shards.account import Account, BuyTrigger, Pending, SellTrigger

SUMMARY_TRANSACTIONS = 20
Row = dict[str, Any]


class SummaryView:
    """Renders summaries and keeps, per user, what it rendered last. Each cache entry holds the
    account it was made from, so an account replaced by `Engine.load` is rendered afresh.

    Transaction records never change once made and holdings are compared at every summary, so
    those need no telling; trigger rows are kept until `trigger_changed` or `triggers_fired`.
    """

    def __init__(self) -> None:
        # user -> (account, records rendered, the last of them, its 20 newest records as rows)
        self._newest: dict[str, tuple[Account, int, tuple[Any, ...] | None, list[Row]]] = {}
        # user -> [account, buy table, sell table, buy rows by symbol, sell rows by symbol]
        # (a table is None once a trigger of it changed)
        self._tables: dict[str, list[Any]] = {}
        # user -> (account, its holdings sorted by symbol, zeros included)
        self._holdings: dict[str, tuple[Account, dict[str, int]]] = {}

    def render(self, acct: Account, before_txn: int | None = None) -> dict[str, Any]:
        """The summary of `acct`; its records older than `before_txn` when given."""
        buy_triggers, sell_triggers = self._trigger_tables(acct)
        return {
            "user": acct.user,
            "cash": format_cents(acct.cash),
            "holdings": self._holdings_shown(acct),
            "pending_buys": [_pending_row(p) for p in reversed(acct.pending_buys)],
            "pending_sells": [_pending_row(p) for p in reversed(acct.pending_sells)],
            "buy_triggers": buy_triggers,
            "sell_triggers": sell_triggers,
            "transactions": (self._newest_rows(acct) if before_txn is None
                             else _rows_before(acct, before_txn)),
            "transactions_total": len(acct.transactions),
        }

    def trigger_changed(self, user: str, symbol: str, buy: bool) -> None:
        """The user's buy (or sell) trigger on `symbol` changed or went away."""
        cached = self._tables.get(user)
        if cached is not None:
            if buy:
                cached[1] = None
                cached[3].pop(symbol, None)
            else:
                cached[2] = None
                cached[4].pop(symbol, None)

    def triggers_fired(self, user: str) -> None:
        """A trigger of the user fired (rare: every row is rendered again)."""
        self._tables.pop(user, None)

    def _holdings_shown(self, acct: Account) -> dict[str, int]:
        """Free shares by symbol, sorted, without the zeros: sorted again only when the set of
        symbols changes. The sorted copy is compared with the live holdings at every call (one
        C-level dict comparison), so no change can be missed."""
        holdings = acct.holdings
        view = self._holdings.get(acct.user)
        ordered = None
        if view is not None and view[0] is acct:
            ordered = view[1]
            if ordered != holdings:
                if ordered.keys() == holdings.keys():
                    ordered.update(holdings)  # same symbols: new counts, the order kept
                else:
                    ordered = None
        if ordered is None:
            ordered = {symbol: holdings[symbol] for symbol in sorted(holdings)}
            self._holdings[acct.user] = (acct, ordered)
        if 0 in ordered.values():
            return {symbol: shares for symbol, shares in ordered.items() if shares}
        return ordered.copy()  # each reply its own dict: the cached one changes in place

    def _newest_rows(self, acct: Account) -> list[Row]:
        """The 20 newest records, newest first; only those added since the last call rendered."""
        txs = acct.transactions
        n = len(txs)
        view = self._newest.get(acct.user)
        if view is not None and view[0] is acct and 0 < view[1] <= n and (
                txs[view[1] - 1] is view[2]):
            added = n - view[1]
            if added == 0:
                newest = view[3]
            elif added < SUMMARY_TRANSACTIONS:
                newest = [_tx_row(t) for t in reversed(txs[view[1]:])]
                newest += view[3][:SUMMARY_TRANSACTIONS - added]
            else:
                newest = [_tx_row(t) for t in txs[:-SUMMARY_TRANSACTIONS - 1:-1]]
        else:
            newest = [_tx_row(t) for t in txs[:-SUMMARY_TRANSACTIONS - 1:-1]]
        self._newest[acct.user] = (acct, n, txs[-1] if n else None, newest)
        return list(newest)

    def _trigger_tables(self, acct: Account) -> tuple[list[Row], list[Row]]:
        """Both trigger tables in symbol order, a table put together again only after a change,
        and only the changed triggers' rows rendered."""
        cached = self._tables.get(acct.user)
        if cached is None or cached[0] is not acct:
            cached = self._tables[acct.user] = [acct, None, None, {}, {}]
        buy_table = cached[1]
        if buy_table is None:
            buy_table = cached[1] = _table(acct.buy_triggers, cached[3], _buy_trigger_row)
        sell_table = cached[2]
        if sell_table is None:
            sell_table = cached[2] = _table(acct.sell_triggers, cached[4], _sell_trigger_row)
        return list(buy_table), list(sell_table)


def summary(acct: Account, before_txn: int | None = None) -> dict[str, Any]:
    """DISPLAY_SUMMARY's result for one account (nothing kept for the next)."""
    return SummaryView().render(acct, before_txn)


def _rows_before(acct: Account, before_txn: int) -> list[Row]:
    """The 20 newest records older than `before_txn`, newest first (a page further back)."""
    rows = []
    for t in reversed(acct.transactions):
        if t[0] < before_txn:
            rows.append(_tx_row(t))
            if len(rows) == SUMMARY_TRANSACTIONS:
                break
    return rows


def _table(triggers: dict[str, Any], rows: dict[str, Row],
           render: Callable[[str, Any], Row]) -> list[Row]:
    """A trigger table in symbol order, rendering only the rows not kept in `rows`."""
    table = []
    for symbol in sorted(triggers):
        row = rows.get(symbol)
        if row is None:
            row = rows[symbol] = render(symbol, triggers[symbol])
        table.append(row)
    return table


def _tx_row(t: tuple[Any, ...]) -> Row:
    """A record (TxRecord's fields) as DISPLAY_SUMMARY shows it."""
    txn, time, kind, symbol, shares, price, cash_delta = t
    return {"txn": txn, "time": time, "kind": kind, "symbol": symbol, "shares": shares,
            "price": None if price is None else format_cents(price),
            "cash_delta": format_cents(cash_delta)}


def _buy_trigger_row(symbol: str, t: BuyTrigger) -> Row:
    return {"symbol": symbol, "reserved": format_cents(t.reserved),
            "trigger_price": None if t.price is None else format_cents(t.price)}


def _sell_trigger_row(symbol: str, t: SellTrigger) -> Row:
    return {"symbol": symbol, "amount": format_cents(t.amount),
            "trigger_price": None if t.price is None else format_cents(t.price),
            "reserved_shares": t.reserved_shares}


def _pending_row(p: Pending) -> Row:
    return {"txn": p.txn, "symbol": p.symbol, "shares": p.shares, "price": format_cents(p.price),
            "expires_at": p.expires_at}
