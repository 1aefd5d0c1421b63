"""The pure-engine side of the end-to-end comparisons: the same lines, expiries and trigger
firings run through one in-process Engine on a clock the test sets, for comparison with what the
real server replied, pushed, showed in DISPLAY_SUMMARY and wrote to DUMPLOG."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from protocol.errors import ProtocolError
from protocol.parser import parse_request
from protocol.quote import PriceQuote
from protocol.replies import Reply
from server.audit.dumpfile import render_events
from server.shards.audit_events import AuditEvent
from server.shards.engine import Engine, NeedQuote, summary

#: The oracle's clock starts here (Unix ms); only differences between its times matter.
T0 = 1_764_072_000_000

#: Reply fields that say when something happened, or which key the quote server gave, which
#: the oracle cannot know.
_WALL_CLOCK_FIELDS = {"time", "expires_at", "quote_time", "age_ms", "cryptokey"}
_AUDIT_PLACE_AND_TIME = {"timestamp", "server", "quoteServerTime", "cryptokey"}


class Oracle:
    """One Engine fed wire lines at a time the test chooses, each quote at the price `prices`
    holds for its symbol when it is asked (a test may move them: it shares the dict)."""

    def __init__(self, prices: dict[str, int]) -> None:
        self.engine = Engine()
        self.prices = prices
        self.events: list[AuditEvent] = []
        self.pushes: list[dict[str, Any]] = []

    def run(self, txn: int, line: str, now: int) -> Reply | None:
        """Apply `[txn] line` at `now`; its reply (None for a line the parser refuses, which
        changes nothing, and for DUMPLOG, which the server writes itself)."""
        try:
            cmd = parse_request(f"[{txn}] {line}")
        except ProtocolError:
            return None
        outcome = self.engine.execute(cmd, now)
        if isinstance(outcome, NeedQuote):
            outcome = self.engine.execute(cmd, now, self.quote(outcome.symbol, outcome.user, now))
        self._drain()
        return outcome if isinstance(outcome, Reply) else None

    def quote(self, symbol: str, user: str, now: int) -> PriceQuote:
        """The quote of `symbol` at `now`, at its current price (a cached one: the quote
        server's own audit events depend on which shard fetched first, so no comparison uses
        them)."""
        return PriceQuote(symbol, self.prices[symbol], now, "oracle", user, False)

    def crossings(self, now: int) -> set[tuple[str, str, str]]:
        """(user, side, symbol) of every armed trigger the current prices cross at `now`."""
        crossed = set()
        for symbol, owner in self.engine.armed_symbols().items():
            for user, is_buy in self.engine.crossings(self.quote(symbol, owner, now), now):
                crossed.add((user, "buy" if is_buy else "sell", symbol))
        return crossed

    def fire(self, symbol: str, txns: list[int], now: int) -> None:
        """A sweep's quote of `symbol` at its current price, firing under `txns` in order."""
        owner = self.engine.armed_symbols()[symbol]
        self.engine.fire_triggers(self.quote(symbol, owner, now), now, iter(txns))
        self._drain()

    def fire_as_the_server_did(self, fired: list[dict[str, Any]], now: int) -> None:
        """Fire what the server's `trigger_fired` events say it fired: each symbol's sweep
        quote under the txns the server gave that symbol's firings, lowest first."""
        for symbol in sorted({e["symbol"] for e in fired}):
            self.fire(symbol, sorted(e["txn"] for e in fired if e["symbol"] == symbol), now)

    def expire(self, now: int) -> None:
        """The expiry timer at `now`: every pending entry whose 60 s are over is released."""
        self.engine.expire_due(now)
        self._drain()

    def summary(self, user: str) -> dict[str, Any]:
        return summary(self.engine.accounts[user])

    def _drain(self) -> None:
        effects = self.engine.drain()
        self.events.extend(effects.events)
        self.pushes.extend({"event": p.event, **p.data} for _, p in effects.pushes)


def comparable(value: Any) -> Any:
    """A reply result or DISPLAY_SUMMARY without its wall-clock fields and quote keys, at any
    depth."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in _WALL_CLOCK_FIELDS}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def comparable_reply(reply: dict[str, Any] | Reply) -> dict[str, Any]:
    """A reply (the server's JSON or the oracle's Reply) as ok, cmd, txn, result or error code."""
    if isinstance(reply, Reply):
        reply = json.loads(reply.to_json())
    out = {"txn": reply["txn"], "cmd": reply["cmd"], "ok": reply["ok"]}
    if reply["ok"]:
        out["result"] = comparable(reply["result"])
    else:
        out["code"] = reply["error"]["code"]
    return out


def audit_events(xml_text: str) -> list[dict[str, str]]:
    """Every event of an audit log as {"kind": tag, child tag: text, ...}."""
    return [{"kind": e.tag, **{c.tag: c.text or "" for c in e}} for e in ET.fromstring(xml_text)]


def comparable_audit(events: Iterable[dict[str, str]]) -> list[tuple[tuple[str, str], ...]]:
    """Audit events without when and where they were written, and without quote-server hits,
    the debug notes of cached quotes and DUMPLOG commands (which shard fetched a quote first,
    and when a dump was asked, are the run's business), as a sorted list for comparison as a
    multiset."""
    kept = []
    for event in events:
        if (event["kind"] == "quoteServer" or event.get("command") == "DUMPLOG"
                or event.get("debugMessage", "").startswith("cached quote ")):
            continue
        kept.append(tuple(sorted((k, v) for k, v in event.items()
                                 if k not in _AUDIT_PLACE_AND_TIME)))
    return sorted(kept)


def server_audit(path: Path) -> list[tuple[tuple[str, str], ...]]:
    """The comparable events of a DUMPLOG file the server wrote."""
    return comparable_audit(audit_events(path.read_text(encoding="utf-8")))


def oracle_audit(oracle: Oracle) -> list[tuple[tuple[str, str], ...]]:
    """The comparable events of the oracle's run, rendered by the server's own XML writer."""
    return comparable_audit(audit_events(render_events(oracle.events)))
