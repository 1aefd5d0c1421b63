"""Everything the dashboard knows about the logged-in account, folded from replies.

One AccountStore per session: the last DISPLAY_SUMMARY, every transaction fetched, the quotes seen,
the watchlist and the activity log. Views read it; only the session writes to it.
"""

from __future__ import annotations

from client_tui.model.activity import ActivityLog
from client_tui.model.history import TransactionLog
from client_tui.model.portfolio import (
    Position,
    Totals,
    cost_basis,
    held_shares,
    positions,
    totals,
)
from client_tui.model.quotes import QuoteBook
from client_tui.model.summary import PendingOrder, Summary
from client_tui.model.triggers import TriggerRow, trigger_rows


class AccountStore:
    """The account's state as last seen, and the derived views of it."""

    def __init__(self, user: str = "") -> None:
        self.user = user
        self.summary = Summary.empty(user)
        self.summary_loaded = False
        self.history = TransactionLog()
        self.quotes = QuoteBook()
        self.watchlist: list[str] = []
        #: Symbol -> the error of its last failed QUOTE (cleared by a good one).
        self.quote_errors: dict[str, str] = {}
        self.activity = ActivityLog()

    # --- writes ---------------------------------------------------------------------------

    def apply_summary(self, summary: Summary) -> int:
        """Take a DISPLAY_SUMMARY (newest page); returns how many of its transactions were new."""
        self.summary = summary
        self.summary_loaded = True
        for symbol in self.owned():
            self.watch(symbol)  # what the user owns is on the watchlist
        return self.history.merge(summary.transactions, summary.transactions_total)

    def set_cash(self, cash: int) -> None:
        """A state-changing reply's `cash`, shown before the next summary arrives."""
        s = self.summary
        self.summary = Summary(s.user, cash, s.holdings, s.pending_buys, s.pending_sells,
                               s.buy_triggers, s.sell_triggers, s.transactions,
                               s.transactions_total)

    def watch(self, symbol: str) -> bool:
        """Add `symbol` to the watchlist; False if it was there already."""
        if symbol in self.watchlist:
            return False
        self.watchlist.append(symbol)
        return True

    def unwatch(self, symbol: str) -> bool:
        """Take `symbol` off the watchlist; False if it was not on it or is owned (an owned
        symbol stays while the user owns it)."""
        if symbol not in self.watchlist or self.owned().get(symbol):
            return False
        self.watchlist.remove(symbol)
        self.quote_errors.pop(symbol, None)
        return True

    # --- derived --------------------------------------------------------------------------

    def owned(self) -> dict[str, int]:
        """Shares owned per symbol: free, and held by pending sells and sell triggers."""
        held = held_shares(self.summary)
        owned = {s: n + held.get(s, 0) for s, n in self.summary.holdings.items()}
        for symbol, n in held.items():
            owned.setdefault(symbol, n)
        return {s: n for s, n in owned.items() if n > 0}

    def positions(self) -> list[Position]:
        basis = cost_basis(self.history.chronological())
        return positions(self.summary, self.quotes.last_prices(), basis)

    def totals(self) -> Totals:
        return totals(self.summary, self.positions())

    def orders(self) -> list[PendingOrder]:
        """Pending buys then sells, each newest first (the one COMMIT/CANCEL would settle)."""
        return [*self.summary.pending_buys, *self.summary.pending_sells]

    def newest_pending(self, side: str) -> PendingOrder | None:
        """The entry COMMIT/CANCEL of `side` would settle: the top of the server's stack."""
        orders = self.summary.pending_buys if side == "buy" else self.summary.pending_sells
        return orders[0] if orders else None

    def triggers(self) -> list[TriggerRow]:
        return trigger_rows(self.summary)

    def symbols_in_play(self) -> list[str]:
        """Symbols whose quotes the dashboard keeps fresh: watched, owned, pending or triggered."""
        seen: dict[str, None] = dict.fromkeys(self.watchlist)
        s = self.summary
        for symbol in (*s.holdings, *(o.symbol for o in self.orders()),
                       *(t.symbol for t in self.triggers())):
            seen.setdefault(symbol)
        return list(seen)
