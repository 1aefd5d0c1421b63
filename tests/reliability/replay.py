"""A per-user closed-loop replay that survives dying shards and a dying server.

Each user has a connection of its own; its next command goes out only after the previous one has a
final reply. `internal`, `busy`, a timeout or a lost connection are retried with the same txn
(PROTOCOL.md: the answer then says whether it had applied), reconnecting as often as needed to
whatever server `endpoint()` names at that moment (the token changes when `daytrade up` restarts).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.workload import WorkloadLine
from protocol.client import ClientError, DaytradeClient
from protocol.replies import Reply

#: (host, port, operator token) of the server as it is now.
Endpoint = Callable[[], tuple[str, int, str]]
RETRIED_CODES = ("internal", "busy")


@dataclass
class Outcome:
    """The final reply of one command and what it took to get it."""

    reply: Reply
    sent_ms: int  # wall clock when the attempt that got `reply` went out
    attempts: int
    latency: float  # seconds from the first attempt to the final reply
    recovery: float | None  # seconds from the first failed attempt to the final reply


@dataclass
class ResilientReplay:
    """Replays workload lines per user, concurrently across users, retrying until final."""

    endpoint: Endpoint
    timeout: float = 30.0  # per attempt
    give_up_s: float = 180.0  # per command
    retried_codes: tuple[str, ...] = RETRIED_CODES  # error codes that are sent again
    outcomes: dict[tuple[str | None, int], Outcome] = field(default_factory=dict)  # (user, txn)
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    progress: int = 0

    async def _connect(self) -> DaytradeClient:
        host, port, token = self.endpoint()
        client = await DaytradeClient.connect(host, port, timeout=self.timeout)
        reply = await client.auth(token)
        if not reply.ok:  # the server restarted between endpoint() and AUTH: a new token
            await client.close()
            raise ConnectionError(f"AUTH refused: {reply.message}")
        return client

    async def send(self, conn: list[DaytradeClient | None], item: WorkloadLine) -> Outcome:
        """`item` until it has a final reply; `conn` holds this user's connection."""
        started = time.monotonic()
        first_failure: float | None = None
        attempts = 0
        while time.monotonic() - started < self.give_up_s:
            attempts += 1
            sent_ms = time.time_ns() // 1_000_000
            try:
                if conn[0] is None or conn[0].closed:
                    conn[0] = await self._connect()
                reply = await conn[0].send(item.text, txn=item.txn)
            except (TimeoutError, ClientError, OSError) as exc:
                self.failures[type(exc).__name__] += 1
                if conn[0] is not None:
                    await conn[0].close()
                conn[0] = None
            else:
                if reply.ok or str(reply.code) not in self.retried_codes:
                    now = time.monotonic()
                    return Outcome(reply, sent_ms, attempts, now - started,
                                   None if first_failure is None else now - first_failure)
                self.failures[str(reply.code)] += 1
            if first_failure is None:
                first_failure = time.monotonic()
            await asyncio.sleep(0.05)
        raise AssertionError(f"no final reply for {item} within {self.give_up_s} s")

    async def run(self, items: list[WorkloadLine],
                  on_progress: Callable[[int], Awaitable[None]] | None = None) -> None:
        by_user: dict[str | None, list[WorkloadLine]] = defaultdict(list)
        for item in items:
            by_user[item.user].append(item)

        async def user_loop(lines: list[WorkloadLine]) -> None:
            conn: list[DaytradeClient | None] = [None]
            try:
                for item in lines:
                    self.outcomes[(item.user, item.txn)] = await self.send(conn, item)
                    self.progress += 1
                    if on_progress is not None:
                        await on_progress(self.progress)
            finally:
                if conn[0] is not None:
                    await conn[0].close()

        await asyncio.gather(*(user_loop(lines) for lines in by_user.values()))

    @property
    def retried(self) -> int:
        """Commands that needed more than one attempt."""
        return sum(1 for o in self.outcomes.values() if o.attempts > 1)

    @property
    def recoveries(self) -> list[float]:
        return [o.recovery for o in self.outcomes.values() if o.recovery is not None]
