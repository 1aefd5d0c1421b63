"""Check a DUMPLOG file: valid against the packaged logfile.xsd, and consistent with itself.

One streaming pass (lxml iterparse, each event dropped once read) validates the schema and sums
each user's accountTransaction funds (`add` +, `remove` -). Those sums must equal the cash that
DISPLAY_SUMMARY reports for each user. The bench asks for every user's summary just before and
just after the DUMPLOG; cash may move in between (a trigger fires, a reservation expires), so
the log must match one of the cash values the user held from the first summary to the second,
as the second summary's newest transactions tell.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from protocol.logfile import log_schema
from protocol.money import parse_cents, parse_signed_cents
from server.shards.audit_events import EVENT_KINDS

#: Mismatches listed in full in the report (the count is always complete).
MAX_LISTED = 20


@dataclass
class LogScan:
    """What one pass over a log found."""

    schema_error: str | None = None
    events: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    #: user -> cents, from accountTransaction add/remove
    cash: dict[str, int] = field(default_factory=dict)
    #: accountTransactions that could not be read (bad action or funds)
    bad_transactions: list[str] = field(default_factory=list)

    @property
    def schema_ok(self) -> bool:
        return self.schema_error is None


def scan_log(path: str | os.PathLike[str]) -> LogScan:
    """Validate `path` against the schema while summing each user's cash (streaming)."""
    scan = LogScan()
    by_kind: dict[str, int] = dict.fromkeys(EVENT_KINDS, 0)
    root_closed = False
    try:
        # Internal entities only (lxml's default) and no network: no XXE.
        # Only the root and the events reach Python; their fields are read from each event.
        for _, element in etree.iterparse(str(path), events=("end",), tag=("log", *EVENT_KINDS),
                                          schema=log_schema(), huge_tree=True, no_network=True):
            parent = element.getparent()
            if parent is None:
                root_closed = True
                continue
            scan.events += 1
            tag = element.tag
            if tag in by_kind:
                by_kind[tag] += 1
            if tag == "accountTransaction":
                _account(element, scan)
            # Drop the finished event and what came before it, so memory stays flat.
            element.clear()
            while element.getprevious() is not None:
                del parent[0]
    except etree.XMLSyntaxError as exc:
        scan.schema_error = f"{exc.msg} (near event {scan.events + 1})"
    except OSError as exc:
        scan.schema_error = f"cannot read {path}: {exc}"
    else:
        if not root_closed:
            scan.schema_error = f"the document ends before </log> (after {scan.events} events)"
    scan.by_kind = {k: v for k, v in by_kind.items() if v}
    return scan


def _account(element: Any, scan: LogScan) -> None:
    user = element.findtext("username") or ""
    action = (element.findtext("action") or "").strip()
    funds = parse_cents((element.findtext("funds") or "").strip())
    if funds is None or action not in ("add", "remove"):
        if len(scan.bad_transactions) < MAX_LISTED:
            scan.bad_transactions.append(
                f"txn {element.findtext('transactionNum')}: action {action!r}, funds "
                f"{element.findtext('funds')!r}")
        return
    scan.cash[user] = scan.cash.get(user, 0) + (funds if action == "add" else -funds)


def _signed_cents(text: Any) -> int:
    cents = parse_signed_cents(str(text))
    if cents is None:
        raise ValueError(f"not an amount: {text!r}")
    return cents


@dataclass(frozen=True)
class CashSummary:
    """What DISPLAY_SUMMARY says of a user's cash: now, and the newest changes that led there."""

    cash: int
    #: transactions_total: how many changes of cash or shares the user has had
    total: int
    #: cash_delta of the newest transactions, newest first (at most 20)
    deltas: tuple[int, ...]


def cash_summary(result: dict[str, Any] | None) -> CashSummary | None:
    """Read a DISPLAY_SUMMARY result; None for a user the server does not know."""
    if result is None:
        return None
    cents = parse_cents(str(result.get("cash", "")))
    if cents is None:
        raise ValueError(f"DISPLAY_SUMMARY cash is not an amount: {result.get('cash')!r}")
    deltas = tuple(_signed_cents(t.get("cash_delta", "0")) for t in result.get("transactions", []))
    return CashSummary(cents, int(result.get("transactions_total", len(deltas))), deltas)


def states_between(before: CashSummary | None, after: CashSummary | None) -> list[int] | None:
    """Every cash the user held from the first summary to the second, newest first.

    Walks the second summary's newest transactions back to the first summary's count. None
    when more changed in between than a summary lists (the log then cannot be placed).
    """
    if after is None:
        return [before.cash if before is not None else 0]
    changes = after.total - (before.total if before is not None else 0)
    if changes <= 0:
        return [after.cash]
    if changes > len(after.deltas):
        return None
    states = [after.cash]
    for delta in after.deltas[:changes]:
        states.append(states[-1] - delta)
    return states


@dataclass
class CashCheck:
    """The log's cash per user against DISPLAY_SUMMARY."""

    users: int = 0
    matched: int = 0
    #: users whose cash moved between the two summaries (the log matched a state in between)
    moved: int = 0
    #: users with more changes between the summaries than a summary lists (not checked)
    unverified: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    mismatch_count: int = 0

    @property
    def ok(self) -> bool:
        return self.mismatch_count == 0


def check_cash(log_cash: dict[str, int], users: Iterable[str],
               before: dict[str, CashSummary | None], after: dict[str, CashSummary | None]
               ) -> CashCheck:
    """Each user's cash replayed from the log must be a cash the user held between the
    summary taken just before the DUMPLOG and the one just after (both None: cash 0)."""
    check = CashCheck()
    for user in users:
        check.users += 1
        logged = log_cash.get(user, 0)
        first, last = before.get(user), after.get(user)
        states = states_between(first, last)
        if states is None:
            check.unverified += 1
            continue
        start = first.cash if first is not None else 0
        if states[-1] != start:
            reason = "the summaries' own transactions do not lead from one cash to the other"
        elif logged in states:
            check.matched += 1
            if len(states) > 1:
                check.moved += 1
            continue
        else:
            reason = "the log's cash is none the user held around the DUMPLOG"
        check.mismatch_count += 1
        if len(check.mismatches) < MAX_LISTED:
            check.mismatches.append({"user": user, "log_cents": logged,
                                     "summary_cents": last.cash if last else 0,
                                     "summary_before_cents": start, "reason": reason})
    return check


def validation_report(scan: LogScan, cash: CashCheck | None) -> dict[str, Any]:
    """The report's `validation` section."""
    return {
        "ok": scan.schema_ok and not scan.bad_transactions and (cash is None or cash.ok),
        "schema_ok": scan.schema_ok,
        "schema_error": scan.schema_error,
        "events": scan.events,
        "events_by_kind": scan.by_kind,
        "bad_transactions": scan.bad_transactions,
        "cash": None if cash is None else {
            "ok": cash.ok, "users": cash.users, "matched": cash.matched, "moved": cash.moved,
            "unverified": cash.unverified, "mismatches": cash.mismatch_count,
            "examples": cash.mismatches},
    }


def validate_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Schema-check a log on its own (no summaries to compare with)."""
    return validation_report(scan_log(Path(path)), None)
