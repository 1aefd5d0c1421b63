"""The user's transactions gathered from DISPLAY_SUMMARY pages, filtered, and exported as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from client_tui.model.format import iso_utc
from client_tui.model.summary import Transaction
from protocol.money import format_cents

#: Transaction kinds (COMMANDS.md) by the filter a user picks; "" means every kind.
KIND_FILTERS: dict[str, tuple[str, ...]] = {
    "": (),
    "add": ("add",),
    "buy": ("buy_reserve", "buy_commit", "buy_release"),
    "sell": ("sell_reserve", "sell_commit", "sell_release"),
    "trigger": ("trigger_reserve", "trigger_release", "trigger_fill"),
    "fills": ("buy_commit", "sell_commit", "trigger_fill"),
}

CSV_COLUMNS = ("txn", "time_utc", "kind", "symbol", "shares", "price", "cash_delta")


class TransactionLog:
    """Every transaction fetched so far, newest first, each once, plus the server's total count."""

    def __init__(self) -> None:
        self._records: list[Transaction] = []
        self._seen: set[Transaction] = set()
        self.total = 0

    def __len__(self) -> int:
        return len(self._records)

    @property
    def records(self) -> Sequence[Transaction]:
        """Newest first."""
        return self._records

    @property
    def complete(self) -> bool:
        """Whether every transaction the server counts has been fetched."""
        return len(self._records) >= self.total

    def merge(self, page: Iterable[Transaction], total: int | None = None) -> int:
        """Add a page (newest first) of transactions; returns how many were new."""
        if total is not None:
            self.total = total
        fresh = [t for t in page if t not in self._seen]
        if not fresh:
            return 0
        self._seen.update(fresh)
        newest_known = self._records[0].time if self._records else None
        if newest_known is not None and fresh[-1].time < newest_known:
            self._records = self._records + fresh  # an older page
        else:
            self._records = fresh + self._records  # a newer page
        # Stable: records of one millisecond keep the server's order.
        self._records.sort(key=lambda t: t.time, reverse=True)
        return len(fresh)

    def oldest_txn(self, page: Sequence[Transaction]) -> int | None:
        """The `before_txn` that asks for the page older than `page`."""
        return min((t.txn for t in page), default=None)

    def chronological(self) -> list[Transaction]:
        return list(reversed(self._records))


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """Show only `symbol` (empty: any) and kinds of the group `kind` (KIND_FILTERS key)."""

    symbol: str = ""
    kind: str = ""

    def matches(self, t: Transaction) -> bool:
        if self.symbol and (t.symbol or "") != self.symbol.upper():
            return False
        kinds = KIND_FILTERS.get(self.kind, ())
        return not kinds or t.kind in kinds


def filtered(records: Iterable[Transaction], flt: HistoryFilter) -> list[Transaction]:
    return [t for t in records if flt.matches(t)]


def to_csv(records: Iterable[Transaction]) -> str:
    """CSV with a header row; money as dollars with two decimals, time in ISO UTC."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for t in records:
        writer.writerow((t.txn, iso_utc(t.time), t.kind, t.symbol or "", t.shares,
                         "" if t.price is None else format_cents(t.price),
                         format_cents(t.cash_delta)))
    return out.getvalue()
