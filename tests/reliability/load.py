"""Closed-loop users trading through the real server while the test breaks its dependencies.

Every attempt has a timeout; `internal` and `busy` are retried with the same txn (the server's
txn when the line went without one), so each command ends with a known final reply. Each attempt
is tagged with the phase (the fault in force) it was sent in. The commands and final replies then
go through the pure engine (verify.py) to check that nothing acknowledged was lost.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import string
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from protocol.client import ClientError, DaytradeClient
from protocol.replies import Reply
from tests.reliability.figures import p99
from tests.reliability.replay import Endpoint
from tests.server.conftest import fixed_price

#: The most seconds the load waits for every user's first reply before failing.
WARM_UP_LIMIT_S = 120.0

#: Codes a command may end an attempt with while a dependency fails (PROTOCOL.md).
DEPENDENCY_ERRORS = frozenset({"quote_unavailable", "busy", "internal"})
HOT_SYMBOLS = ("ABC", "DEF", "GHI", "JKL", "MNO")


@dataclass
class Attempt:
    phase: str
    sent_ms: int  # wall clock when the attempt went out
    latency: float
    code: str | None  # None: ok; an error code; "timeout" or "lost" when no reply came


@dataclass
class Command:
    user: str
    text: str
    txn: int | None  # None until the server assigned one (txn-less users)
    attempts: list[Attempt] = field(default_factory=list)
    final: Reply | None = None


def fmt(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class UserScript:
    """The endless, seeded command sequence of one user: fresh and hot symbols, buy and sell."""

    def __init__(self, user: str, rng: random.Random, fresh: itertools.count) -> None:
        self.user = user
        self.rng = rng
        self.fresh = fresh

    def symbol(self) -> str:
        if self.rng.random() < 0.5:
            return self.rng.choice(HOT_SYMBOLS)
        n = next(self.fresh)  # a symbol no one asked for yet: a quote-server fetch
        letters = string.ascii_uppercase
        return letters[n // 676 % 26] + letters[n // 26 % 26] + letters[n % 26]

    def __iter__(self):
        u = self.user
        yield f"ADD,{u},100000.00"
        while True:
            sym = self.symbol()
            price = fixed_price(sym)
            yield f"QUOTE,{u},{sym}"
            yield f"BUY,{u},{sym},{fmt(2 * price + 1)}"
            yield f"COMMIT_BUY,{u}" if self.rng.random() < 0.8 else f"CANCEL_BUY,{u}"
            yield f"SELL,{u},{sym},{fmt(price)}"
            yield f"COMMIT_SELL,{u}" if self.rng.random() < 0.8 else f"CANCEL_SELL,{u}"
            if self.rng.random() < 0.2:
                yield f"DISPLAY_SUMMARY,{u}"


class DependencyLoad:
    """`users` closed-loop users (the first `txnless` of them send no txns) plus a PING probe."""

    def __init__(self, endpoint: Endpoint, users: int, *, seed: str, attempt_timeout: float = 15.0,
                 txnless: int = 1) -> None:
        self.endpoint = endpoint
        self.users = [f"dep{i}" for i in range(users)]
        self.txnless = set(self.users[:txnless])
        self.rng = random.Random(seed)
        self.attempt_timeout = attempt_timeout
        self.phase = "normal"
        self.commands: list[Command] = []
        self.pings: dict[str, list[float]] = defaultdict(list)
        self._txns = itertools.count(1_000)
        self._fresh = itertools.count(self.rng.randrange(1000))

    async def _connect(self) -> DaytradeClient:
        host, port, token = self.endpoint()
        client = await DaytradeClient.connect(host, port, timeout=self.attempt_timeout)
        assert (await client.auth(token)).ok
        return client

    async def _user(self, user: str, stop: asyncio.Event) -> None:
        client = await self._connect()
        script = iter(UserScript(user, random.Random(self.rng.random()), self._fresh))
        try:
            while not stop.is_set():
                text = next(script)
                cmd = Command(user, text, None if user in self.txnless else next(self._txns))
                self.commands.append(cmd)
                while cmd.final is None:
                    phase, started = self.phase, time.monotonic()
                    sent_ms = time.time_ns() // 1_000_000
                    try:
                        reply = await client.send(text, txn=cmd.txn)
                    except (TimeoutError, ClientError, OSError) as exc:
                        code = "timeout" if isinstance(exc, TimeoutError) else "lost"
                        cmd.attempts.append(Attempt(phase, sent_ms, time.monotonic() - started,
                                                    code))
                        if cmd.txn is None:
                            return  # the server's txn is unknown: this user cannot go on
                        await client.close()
                        client = await self._connect()
                        continue
                    code = None if reply.ok else str(reply.code)
                    cmd.attempts.append(Attempt(phase, sent_ms, time.monotonic() - started, code))
                    if cmd.txn is None:
                        cmd.txn = reply.txn
                    if code in ("internal", "busy"):
                        await asyncio.sleep(0.05)
                        continue
                    cmd.final = reply
        finally:
            await client.close()

    async def _probe(self, stop: asyncio.Event) -> None:
        client = await self._connect()
        try:
            while not stop.is_set():
                phase, started = self.phase, time.monotonic()
                await client.send("PING")
                self.pings[phase].append(time.monotonic() - started)
                await asyncio.sleep(0.05)
        finally:
            await client.close()

    async def run(self, phases: list[tuple[str, Callable[[], object] | None]],
                  phase_s: float) -> None:
        """Load runs through every phase: (name, blocking action started with it, in a thread
        of its own), `phase_s` seconds each, after `phase_s` seconds of "normal"."""
        stop = asyncio.Event()
        tasks = [asyncio.create_task(self._user(u, stop)) for u in self.users]
        tasks.append(asyncio.create_task(self._probe(stop)))
        actions = []
        try:
            self.phase = "warm-up"  # until every user has had a reply (the shards start)
            for _ in range(int(WARM_UP_LIMIT_S / 0.05)):
                answered = {c.user for c in self.commands if c.final is not None}
                if len(answered) == len(self.users):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"only {len(answered)} of {len(self.users)} users had a "
                                     f"reply within the {WARM_UP_LIMIT_S:g} s warm-up")
            self.phase = "normal"
            await asyncio.sleep(phase_s)
            for name, action in phases:
                self.phase = name
                if action is not None:  # may block for a while (a held lock): not awaited here
                    actions.append(asyncio.create_task(asyncio.to_thread(action)))
                await asyncio.sleep(phase_s)
        finally:
            stop.set()
            await asyncio.gather(*tasks, *actions)

    # --- figures ------------------------------------------------------------------------------

    def attempts(self, phase: str | None = None) -> list[Attempt]:
        return [a for c in self.commands for a in c.attempts if phase in (None, a.phase)]

    def unanswered(self) -> list[Attempt]:
        return [a for a in self.attempts() if a.code in ("timeout", "lost")]

    def time_to_error(self, phase: str | None = None) -> list[float]:
        return [a.latency for a in self.attempts(phase) if a.code in DEPENDENCY_ERRORS]

    def codes(self, phase: str | None = None) -> Counter:
        return Counter(a.code or "ok" for a in self.attempts(phase))

    def phase_line(self, phase: str) -> str:
        attempts = self.attempts(phase)
        latencies = [a.latency for a in attempts]
        errors = self.time_to_error(phase)
        pings = self.pings.get(phase, [])
        codes = ", ".join(f"{k} {v}" for k, v in sorted(self.codes(phase).items()))
        return (f"{phase}: {len(attempts)} replies ({codes}); time-to-error p99 "
                f"{p99(errors):.2f} s; reply max {max(latencies, default=0):.2f} s; "
                f"PING p99 {p99(pings) * 1000:.0f} ms")

    def finished(self) -> list[Command]:
        return [c for c in self.commands if c.final is not None]
