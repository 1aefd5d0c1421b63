"""A price quote as the legacy quote server gave it, in cents, with where it came from."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.limits import QUOTE_LIFETIME_MS


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """One quote. `fresh` is True only for the one command that caused a real quote-server hit."""

    symbol: str
    price: int  # cents, > 0
    quote_time: int  # Unix ms, as the quote server reported it
    cryptokey: str
    user: str  # the user the quote server was asked for
    fresh: bool = False

    def usable_at(self, now: int) -> bool:
        """True while the quote may still back an order at `now` (ms)."""
        return now < self.quote_time + QUOTE_LIFETIME_MS

    def cached(self) -> PriceQuote:
        """The same quote as seen by every command after the one that fetched it."""
        if not self.fresh:
            return self
        return PriceQuote(self.symbol, self.price, self.quote_time, self.cryptokey, self.user)
