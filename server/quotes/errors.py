"""The typed error a quote lookup fails with when no usable quote could be had."""

from __future__ import annotations

from protocol.errors import ErrorCode


class QuoteUnavailable(Exception):
    """No quote for `symbol` could be had (quote server slow, down or answering garbage)."""

    code = ErrorCode.QUOTE_UNAVAILABLE

    def __init__(self, symbol: str, reason: str) -> None:
        super().__init__(f"no quote for {symbol}: {reason}")
        self.symbol = symbol
        self.reason = reason
