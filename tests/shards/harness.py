"""A trading desk for engine tests: an Engine with a clock, a price per symbol and txns, fed wire
lines the way a shard is, and keeping every event it drained."""

from __future__ import annotations

import dataclasses
from typing import Any

from protocol.parser import parse_request
from protocol.quote import PriceQuote
from protocol.replies import PushedEvent, Reply
from server.shards.account import Account
from server.shards.audit_events import AuditEvent
from server.shards.engine import DumpRequest, Engine, NeedQuote, quote_unavailable
from server.store import codec

T0 = 1_764_072_000_000  # 2025-11-25 12:00 UTC


class Desk:
    """Runs request lines through one engine at a controllable `now`, answering its quote needs."""

    def __init__(self, prices: dict[str, int] | None = None, now: int = T0) -> None:
        self.engine = Engine("shard-1")
        self.now = now
        self.prices = dict(prices or {"ABC": 1_000})
        self.txn = 0
        self.fresh = True  # the next quotes are quote-server hits (False: served from cache)
        self.asked: list[NeedQuote] = []
        self.events: list[AuditEvent] = []
        self.pushes: list[tuple[str, PushedEvent]] = []

    def next_txn(self) -> int:
        self.txn += 1
        return self.txn

    def quote(self, symbol: str, user: str, price: int | None = None) -> PriceQuote:
        price = self.prices[symbol] if price is None else price
        return PriceQuote(symbol, price, self.now, f"key-{symbol}-{self.now}", user, self.fresh)

    def run(self, line: str, *, unavailable: bool = False,
            quote: PriceQuote | None = None) -> Reply | DumpRequest:
        """Parse and execute one line; answer a NeedQuote with the desk's price (or none)."""
        cmd = parse_request(line)
        if cmd.txn is None:
            cmd = dataclasses.replace(cmd, txn=self.next_txn())
        else:
            self.txn = max(self.txn, cmd.txn)
        outcome = self.engine.execute(cmd, self.now)
        if isinstance(outcome, NeedQuote):
            self.asked.append(outcome)
            if unavailable:
                given = quote_unavailable()
            else:
                given = quote or self.quote(outcome.symbol, outcome.user)
            outcome = self.engine.execute(cmd, self.now, given)
            assert not isinstance(outcome, NeedQuote), "asked twice for a quote"
        self.drain()
        return outcome

    def ok(self, line: str, **kw: Any) -> dict[str, Any]:
        """Run a line that must succeed; its result."""
        reply = self.run(line, **kw)
        assert isinstance(reply, Reply) and reply.ok, reply
        return reply.result

    def fails(self, line: str, **kw: Any) -> str:
        """Run a line that must fail; its error code."""
        reply = self.run(line, **kw)
        assert isinstance(reply, Reply) and not reply.ok, reply
        return str(reply.code)

    def summary(self, user: str) -> dict[str, Any]:
        return self.ok(f"DISPLAY_SUMMARY,{user}")

    def advance(self, ms: int, *, timer: bool = True) -> int:
        """Move the clock; with `timer`, run the shard's expiry timer. Returns entries expired."""
        self.now += ms
        expired = len(self.engine.expire_due(self.now)) if timer else 0
        self.drain()
        return expired

    def sweep(self, symbol: str, price: int) -> int:
        """Offer a quote for `symbol` to the armed triggers; returns how many fired."""
        user = self.engine.armed_symbols().get(symbol, "nobody")
        fired = self.engine.fire_triggers(self.quote(symbol, user, price), self.now,
                                          self.txns())
        self.drain()
        return len(fired)

    def txns(self) -> Any:
        """The desk's txns from here on, as the engine's trigger firings take them."""
        return iter(self.next_txn, None)

    def drain(self) -> None:
        effects = self.engine.drain()
        self.events.extend(effects.events)
        self.pushes.extend(effects.pushes)

    def reloaded(self, user: str) -> Account:
        """The account as a snapshot gives it back (encoded and decoded by the codec)."""
        acct = self.engine.accounts[user]
        half = len(acct.transactions) // 2  # two chunks, as two snapshots would write them
        return codec.decode_account(
            codec.encode_account(codec.account_doc(acct)),
            [codec.encode_tx_records(acct.transactions[:half]),
             codec.encode_tx_records(acct.transactions[half:])])

    def events_of(self, txn: int) -> list[AuditEvent]:
        return [e for e in self.events if e.txn == txn]

    def kinds_of(self, txn: int) -> list[str]:
        return [e.kind for e in self.events_of(txn)]
