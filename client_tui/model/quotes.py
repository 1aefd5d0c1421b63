"""Quotes seen by the dashboard: latest per symbol, age and freshness, and a text sparkline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from client_tui.model.summary import ReplyShapeError, cents
from protocol.limits import QUOTE_LIFETIME_MS

#: From this age on a quote is about to expire: an order placed now may get a new price.
AMBER_AFTER_MS = 45_000
#: Distinct quotes kept per symbol for its sparkline.
HISTORY_KEPT = 60
#: Re-ask for a symbol's quote this often even while it is fresh (another user may have
#: refreshed the shared cache), besides at once when it expires.
REFRESH_EVERY_MS = 20_000

SPARK_BARS = "▁▂▃▄▅▆▇█"
#: Fewer distinct quotes than this draw no sparkline (one or two points say nothing).
MIN_CHART_POINTS = 3


class Freshness(StrEnum):
    """fresh: backs an order; aging: expires within 15 s; stale: past its 60 s life."""

    FRESH = "fresh"
    AGING = "aging"
    STALE = "stale"


def freshness(age_ms: int) -> Freshness:
    if age_ms >= QUOTE_LIFETIME_MS:
        return Freshness.STALE
    if age_ms >= AMBER_AFTER_MS:
        return Freshness.AGING
    return Freshness.FRESH


@dataclass(frozen=True, slots=True)
class QuoteSample:
    """One QUOTE reply: `age_ms` as the server gave it at local time `received_at` (ms)."""

    symbol: str
    price: int
    quote_time: int
    cryptokey: str
    age_ms: int
    received_at: int

    def age_at(self, now_ms: int) -> int:
        """The quote's age now, from the server's age plus local time since (clock-skew free)."""
        return self.age_ms + max(0, now_ms - self.received_at)


def parse_quote(result: Mapping[str, Any], received_at: int) -> QuoteSample:
    """A QUOTE reply's result."""
    try:
        return QuoteSample(str(result["symbol"]), cents(result["price"]),
                           int(result["quote_time"]), str(result.get("cryptokey", "")),
                           int(result.get("age_ms", 0)), received_at)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReplyShapeError(f"bad QUOTE result {dict(result)!r}: {exc}") from None


class QuoteBook:
    """Distinct quotes per symbol (oldest first) and when each symbol was last asked for."""

    def __init__(self) -> None:
        self._samples: dict[str, list[QuoteSample]] = {}
        self._asked: dict[str, int] = {}

    def record(self, sample: QuoteSample) -> bool:
        """Keep `sample`; True when it is a quote not seen before (a new point on the sparkline)."""
        self._asked[sample.symbol] = sample.received_at
        samples = self._samples.setdefault(sample.symbol, [])
        for i, seen in enumerate(samples):
            if (seen.quote_time, seen.cryptokey) == (sample.quote_time, sample.cryptokey):
                samples[i] = sample  # same quote, fresher reading of its age
                return False
        samples.append(sample)
        samples.sort(key=lambda s: s.quote_time)
        del samples[:-HISTORY_KEPT]
        return True

    def latest(self, symbol: str) -> QuoteSample | None:
        samples = self._samples.get(symbol)
        return samples[-1] if samples else None

    def history(self, symbol: str) -> list[int]:
        """Prices of the distinct quotes seen for `symbol`, oldest first."""
        return [s.price for s in self._samples.get(symbol, ())]

    def samples(self, symbol: str) -> list[QuoteSample]:
        """The distinct quotes seen for `symbol`, oldest first."""
        return list(self._samples.get(symbol, ()))

    def last_prices(self) -> dict[str, int]:
        return {sym: samples[-1].price for sym, samples in self._samples.items() if samples}

    def due(self, symbol: str, now_ms: int, refresh_every_ms: int = REFRESH_EVERY_MS) -> bool:
        """Whether to ask for `symbol` now: never asked, expired, or not asked for a while."""
        latest = self.latest(symbol)
        asked = self._asked.get(symbol)
        if latest is None or asked is None:
            return True
        return (latest.age_at(now_ms) >= QUOTE_LIFETIME_MS
                or now_ms - asked >= refresh_every_ms)

    def asked(self, symbol: str) -> bool:
        """Whether `symbol` was ever quoted in this session (a failed ask does not count)."""
        return symbol in self._asked

    def forget(self, symbol: str) -> None:
        self._samples.pop(symbol, None)
        self._asked.pop(symbol, None)


def sparkline(values: Sequence[int], width: int) -> str:
    """The last `width` values as block characters scaled between their min and max."""
    tail = list(values)[-width:] if width > 0 else []
    if not tail:
        return ""
    low, high = min(tail), max(tail)
    if low == high:
        return SPARK_BARS[3] * len(tail)
    top = len(SPARK_BARS) - 1
    return "".join(SPARK_BARS[div_round_pos((v - low) * top, high - low)] for v in tail)


def div_round_pos(numerator: int, denominator: int) -> int:
    """Non-negative integer division rounded half up."""
    return (2 * numerator + denominator) // (2 * denominator)
