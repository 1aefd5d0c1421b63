"""The shard at work against the pure engine (tests/support/oracle.py) over a seeded random
session of several simulated minutes on a fake clock, prices moving as it goes: every reply, every
pending expiry and trigger firing it pushes, every audit event it journals and every account it
leaves (live and recovered from its journal) are the engine's when pending entries expire exactly
60 s after their stamp and the sweep fires what the prices cross every 2 s."""

from __future__ import annotations

import random
from typing import Any

from server.audit.dumpfile import render_events
from server.shards.engine import summary
from server.store import codec
from server.store.sqlite_journal import SqliteJournal
from tests.shards.shard_harness import T0, Shard, recovered
from tests.support.oracle import (
    Oracle,
    audit_events,
    comparable_audit,
    comparable_reply,
    oracle_audit,
)

USERS = ("amy", "ben", "cal", "dee")
SYMBOLS = ("ABC", "DEF", "GHI")
SWEEP_S = 2.0  # the harness's sweep interval
STEPS = 600  # commands; about 20 simulated minutes


def money(rng: random.Random, high: int) -> str:
    return f"{rng.randint(1, high)}.{rng.randint(0, 99):02d}"


def random_line(rng: random.Random, user: str, prices: dict[str, int]) -> str:
    """A command of `user`: mostly ones that hold or release money and shares, with triggers
    armed near the current price so that moving prices cross some of them."""
    symbol = rng.choice(SYMBOLS)
    near = prices[symbol] + rng.randint(-60, 60)
    trigger = f"{near // 100}.{near % 100:02d}"
    return rng.choice([
        f"ADD,{user},{money(rng, 500)}",
        f"BUY,{user},{symbol},{money(rng, 150)}",
        f"BUY,{user},{symbol},{money(rng, 150)}",
        f"COMMIT_BUY,{user}",
        f"CANCEL_BUY,{user}",
        f"SELL,{user},{symbol},{money(rng, 100)}",
        f"SELL,{user},{symbol},{money(rng, 100)}",
        f"COMMIT_SELL,{user}",
        f"CANCEL_SELL,{user}",
        f"SET_BUY_AMOUNT,{user},{symbol},{money(rng, 100)}",
        f"SET_BUY_TRIGGER,{user},{symbol},{trigger}",
        f"CANCEL_SET_BUY,{user},{symbol}",
        f"SET_SELL_AMOUNT,{user},{symbol},{money(rng, 100)}",
        f"SET_SELL_TRIGGER,{user},{symbol},{trigger}",
        f"CANCEL_SET_SELL,{user},{symbol}",
        f"QUOTE,{user},{symbol}",
        f"DISPLAY_SUMMARY,{user}",
    ])


class Session:
    """The shard and the oracle side by side; the test plays the gateway: stamps, txns, quotes."""

    def __init__(self, tmp_path: Any, prices: dict[str, int]) -> None:
        # Sweeps 0.4 ms past a whole ms: never at the instant an entry's 60 s run out (stamps
        # and expiries fall on whole ms), so which of the two runs first never matters.
        self.shard = Shard(tmp_path, start=T0 / 1000 + 0.0004)
        self.prices = prices
        # Both share the dict: a price move is seen by the shard's sweep and by the oracle.
        self.shard.quotes.prices = prices
        self.oracle = Oracle(prices)
        self.next_sweep = self.shard.clock.seconds() + SWEEP_S
        self.txn = 0
        self.requests_seen = 0
        self.pushes_seen = 0
        self.oracle_pushes_seen = 0

    def now(self) -> int:
        return self.shard.now()

    def wait(self, seconds: float) -> None:
        """Let `seconds` pass: the shard's timers fire on its clock, the oracle expires what is
        due and runs each sweep at the same instants."""
        until = self.shard.clock.seconds() + seconds
        while self.next_sweep <= until:
            self.shard.turn(self.next_sweep - self.shard.clock.seconds())
            self.next_sweep += SWEEP_S
            self.oracle.expire(self.now())
            self.sweep()
            self.same_new_pushes()
        self.shard.turn(until - self.shard.clock.seconds())
        self.oracle.expire(self.now())
        self.shard.turn()
        self.same_new_pushes()

    def sweep(self) -> None:
        """The shard asked for one txn per crossing trigger, or for none; its firings under
        the txns given are the oracle's."""
        crossing = self.oracle.crossings(self.now())
        requests = self.shard.txn_requests()
        if len(requests) == self.requests_seen:
            assert crossing == set(), (self.now(), crossing)
            return
        self.requests_seen = len(requests)
        (_, _token, count) = requests[-1]
        assert count == len(crossing), (self.now(), count, crossing)
        self.shard.give_txns(self.txn + 1)
        self.txn += count
        self.shard.turn()
        fired = [e for e in self.shard.pushed()[self.pushes_seen:]
                 if e["event"] == "trigger_fired"]
        assert {(e["user"], e["side"], e["symbol"]) for e in fired} == crossing
        self.oracle.fire_as_the_server_did(fired, self.now())

    def same_new_pushes(self) -> None:
        """What the shard pushed since the last look is what the oracle pushed meanwhile: each
        expiry and firing came at its instant, not a step later."""
        pushes, expected = self.shard.pushed(), self.oracle.pushes
        new = sorted(pushes[self.pushes_seen:], key=push_order)
        assert new == sorted(expected[self.oracle_pushes_seen:], key=push_order), self.now()
        self.pushes_seen, self.oracle_pushes_seen = len(pushes), len(expected)

    def command(self, line: str) -> None:
        """`line` under the next txn, its quote (if it asks for one) at the current price."""
        self.txn += 1
        (request,) = self.shard.send(f"[{self.txn}] {line}")
        for symbol, _user, _d in list(self.shard.quotes.waiting):
            self.shard.quotes.answer(symbol, self.prices[symbol], self.now())
        self.shard.turn()
        expected = self.oracle.run(self.txn, line, self.now())
        assert expected is not None, line
        reply = self.shard.replies()[request]
        assert comparable_reply(reply) == comparable_reply(expected), (self.txn, line)
        self.same_new_pushes()


def test_a_random_session_on_a_fake_clock_matches_the_engine_with_expiry_and_triggers(tmp_path):
    rng = random.Random("service-oracle")
    prices = {symbol: rng.randint(800, 1_200) for symbol in SYMBOLS}
    session = Session(tmp_path, prices)
    try:
        for user in USERS:
            session.command(f"ADD,{user},1000.00")
        for _ in range(STEPS):
            session.wait(rng.randint(0, 4_000) / 1000)
            if rng.random() < 0.3:
                symbol = rng.choice(SYMBOLS)
                prices[symbol] = max(100, prices[symbol] + rng.randint(-80, 80))
            session.command(random_line(rng, rng.choice(USERS), prices))
        last_command = len(session.shard.pushed())
        session.wait(61.0)  # everything still pending expires
        pushed = session.shard.pushed()
        counts = {kind: sum(e["event"] == kind for e in pushed)
                  for kind in ("pending_expired", "trigger_fired")}
        # The session is what it says: many expiries and firings, some after the last command.
        assert counts["pending_expired"] >= 20 and counts["trigger_fired"] >= 10, counts
        assert any(e["event"] == "pending_expired" for e in pushed[last_command:])
        live = {u: summary(a) for u, a in session.shard.service.engine.accounts.items()}
        assert live == {u: session.oracle.summary(u) for u in USERS}
    finally:
        session.shard.close()
    assert {u: summary(a) for u, a in recovered(tmp_path).accounts.items()} == live
    assert journaled_audit(tmp_path) == oracle_audit(session.oracle)


def journaled_audit(tmp_path: Any) -> list[tuple[tuple[str, str], ...]]:
    """The comparable audit events of every record in the shard's journal."""
    journal = SqliteJournal(tmp_path, 0)
    try:
        events = [e for _, data in journal.records() for e in codec.decode_events(data)]
    finally:
        journal.close()
    return comparable_audit(audit_events(render_events(events)))


def push_order(event: dict[str, Any]) -> tuple[str, str, int, str]:
    return (event["event"], event["user"], event["txn"], event.get("side", ""))
