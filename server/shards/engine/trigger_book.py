"""Which users have an armed trigger on each symbol, so that a sweep quote finds what it fires."""

from __future__ import annotations

from protocol.quote import PriceQuote
from server.shards.account import Account


class TriggerBook:
    """An index of the armed buy and sell triggers of the accounts it is given, by symbol.

    A buy trigger is armed once it has a price; a sell trigger once it has a price and holds
    shares. `update` must be called for a symbol whenever a trigger of it may have changed.
    """

    def __init__(self, accounts: dict[str, Account]) -> None:
        self._accounts = accounts
        self._armed: dict[str, set[str]] = {}  # symbol -> users with an armed trigger on it
        # Derived from _armed and dropped whenever it may change: the user to ask for each
        # armed symbol, and per symbol (highest armed buy price, lowest armed sell price), so a
        # sweep quote that crosses neither returns at once.
        self._owners: dict[str, str] | None = None
        self._bounds: dict[str, tuple[int | None, int | None]] = {}

    def update(self, acct: Account, symbol: str) -> None:
        """Take note of the account's triggers on `symbol` as they are now."""
        self._owners = None
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

    def load(self, acct: Account) -> None:
        """Every trigger of an account adopted from a snapshot."""
        for symbol in (*acct.buy_triggers, *acct.sell_triggers):
            self.update(acct, symbol)

    def armed_symbols(self) -> dict[str, str]:
        """Each symbol with an armed trigger, and a user to ask the quote server in the name of."""
        if self._owners is None:
            self._owners = {sym: min(users) for sym, users in self._armed.items()}
        return dict(self._owners)

    def crossings(self, quote: PriceQuote, now: int) -> list[tuple[str, bool]]:
        """The triggers `quote` fires at `now`, in firing order: (user, True for buy)."""
        symbol = quote.symbol
        users = self._armed.get(symbol)
        if not users or not quote.usable_at(now):
            return []
        price = quote.price
        highest_buy, lowest_sell = self._bounds_of(symbol, users)
        if (highest_buy is None or price > highest_buy) and (
                lowest_sell is None or price < lowest_sell):
            return []  # the common case: the quote crosses no trigger on its symbol
        crossed = []
        for user in sorted(users):
            acct = self._accounts[user]
            buy = acct.buy_triggers.get(symbol)
            if buy is not None and buy.price is not None and price <= buy.price:
                crossed.append((user, True))
            sell = acct.sell_triggers.get(symbol)
            if (sell is not None and sell.price is not None and sell.reserved_shares
                    and price >= sell.price):
                crossed.append((user, False))
        return crossed

    def _bounds_of(self, symbol: str, users: set[str]) -> tuple[int | None, int | None]:
        """(highest buy trigger price, lowest sell trigger price) armed on `symbol`."""
        bounds = self._bounds.get(symbol)
        if bounds is None:
            highest_buy = lowest_sell = None
            for user in users:
                acct = self._accounts[user]
                b = acct.buy_triggers.get(symbol)
                if b is not None and b.price is not None and (
                        highest_buy is None or b.price > highest_buy):
                    highest_buy = b.price
                s = acct.sell_triggers.get(symbol)
                if s is not None and s.price is not None and s.reserved_shares and (
                        lowest_sell is None or s.price < lowest_sell):
                    lowest_sell = s.price
            bounds = self._bounds[symbol] = (highest_buy, lowest_sell)
        return bounds
