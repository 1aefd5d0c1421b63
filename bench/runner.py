"""Replay a plan against a server: per-user order, users spread over connections.

Closed loop (the default): each connection keeps up to `in_flight` users going; a user's next
command is sent only once its previous one has been answered. Open loop (`rate`): commands are
released at a fixed rate in file order; a user's command goes out at its release time or when its
previous reply comes, whichever is later, and its latency counts from its release time.

The hot path is callbacks on the client's futures (no task per user), so the client costs as
little CPU as possible: on a 2-core machine it shares the CPU with the server it measures.
Timeouts are one watchdog over the users in flight rather than the client's per-request timer:
an explicit per-request timeout is a timer that is not cancelled by the reply, so it keeps every
answered reply alive for the whole timeout (1 GB of client memory on the final workload).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.metrics import Recorder
from bench.plan import Plan, UserScript, spread
from protocol.client import ConnectionLost, DaytradeClient, RequestTimeout
from protocol.errors import ErrorCode
from protocol.replies import Reply

#: Client-side failure codes, reported with the server's error codes.
TIMEOUT = "client_timeout"
LOST = "connection_lost"
CLIENT_ERROR = "client_error"
_BUSY = ErrorCode.BUSY


@dataclass
class ReplaySettings:
    """How to drive the server."""

    connections: int = 4
    #: users in flight per connection in closed loop (0: all of the connection's users)
    in_flight: int = 0
    #: commands/s offered in open loop (None: closed loop)
    rate: float | None = None
    #: seconds a command may wait for its reply
    timeout: float = 60.0
    #: seconds before a command answered `busy` is sent again
    busy_retry_delay: float = 0.005
    #: seconds between releases in open loop
    tick: float = 0.001


@dataclass
class ClientCounters:
    """What the client side saw besides answers."""

    replies: int = 0
    busy_retries: int = 0
    #: replies whose `cmd` was not the command sent (a mismatched answer)
    mismatched: int = 0
    late_replies: int = 0
    unmatched_replies: int = 0
    decode_errors: int = 0
    cpu_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _UserRun:
    """One user's progress through its script."""

    __slots__ = ("script", "client", "lane", "pos", "started", "sent_at", "fut", "due", "busy",
                 "on_reply")

    def __init__(self, script: UserScript, lane: _Lane) -> None:
        self.script = script
        self.lane = lane
        self.client = lane.client
        self.pos = 0
        self.started = 0.0  # perf_counter the current command's latency counts from
        self.sent_at = 0.0  # perf_counter of the current command's (latest) send
        self.fut: asyncio.Future[Reply] | None = None
        self.due = 0  # open loop: commands released so far
        self.busy = False  # a command is in flight
        self.on_reply: Callable[[asyncio.Future[Reply]], None] = lambda fut: None


@dataclass
class _Lane:
    """One connection and the users it carries."""

    client: DaytradeClient
    waiting: collections.deque[int] = field(default_factory=collections.deque)
    active: int = 0


class Replayer:
    """Runs the main phase of a plan over already authenticated connections."""

    def __init__(self, plan: Plan, clients: list[DaytradeClient], settings: ReplaySettings,
                 recorder: Recorder | None = None) -> None:
        self.plan = plan
        self.settings = settings
        self.recorder = recorder or Recorder(plan.kinds)
        self.counters = ClientCounters()
        self.clients = clients
        self._loop = asyncio.get_running_loop()
        self._lanes = [_Lane(client) for client in clients]
        self._runs: list[_UserRun] = [None] * len(plan.users)  # type: ignore[list-item]
        for lane, indices in zip(self._lanes, spread(len(plan.users), len(clients))):
            for index in indices:
                run = _UserRun(plan.users[index], lane)
                run.on_reply = self._reply_handler(run)
                self._runs[index] = run
                lane.waiting.append(index)
        self._remaining = len(plan.users)
        self._finished: asyncio.Future[None] = self._loop.create_future()
        self._released = 0
        self._t0 = 0.0
        self._ticker: asyncio.TimerHandle | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    async def run(self) -> float:
        """Replay every user's script; returns the wall time in seconds."""
        cpu0 = time.process_time()
        self._t0 = self.recorder.start = time.perf_counter()
        self._watch()
        if self._remaining == 0:
            self._finished.set_result(None)
        elif self.settings.rate:
            self._release()
        else:
            for lane in self._lanes:
                self._start_users(lane)
        try:
            await self._finished
        finally:
            for handle in (self._ticker, self._watchdog):
                if handle is not None:
                    handle.cancel()
        wall = time.perf_counter() - self._t0
        self.counters.cpu_s = time.process_time() - cpu0
        for client in self.clients:
            self.counters.late_replies += client.late_replies
            self.counters.unmatched_replies += client.unmatched_replies
            self.counters.decode_errors += client.decode_errors
        return wall

    # --- closed loop ----------------------------------------------------------------------------

    def _start_users(self, lane: _Lane) -> None:
        limit = self.settings.in_flight or len(lane.waiting) + lane.active
        while lane.waiting and lane.active < limit:
            run = self._runs[lane.waiting.popleft()]
            lane.active += 1
            self._send(run, fresh=True)

    def _user_done(self, run: _UserRun) -> None:
        self._remaining -= 1
        if self._remaining == 0:
            if not self._finished.done():
                self._finished.set_result(None)
            return
        if not self.settings.rate:
            lane = run.lane
            lane.active -= 1
            if lane.waiting:
                # Not inline: a lane whose connection is gone would otherwise recurse per user.
                self._loop.call_soon(self._start_users, lane)

    # --- open loop ------------------------------------------------------------------------------

    def _release(self) -> None:
        """Release every command whose time has come; re-arms itself until all are out."""
        order = self.plan.order
        target = min(len(order), int((time.perf_counter() - self._t0) * self.settings.rate) + 1)
        runs = self._runs
        for position in range(self._released, target):
            run = runs[order[position]]
            run.due += 1
            if not run.busy:
                self._send(run, fresh=True)
        self._released = target
        if target < len(order):
            self._ticker = self._loop.call_later(self.settings.tick, self._release)

    def _scheduled(self, run: _UserRun) -> float:
        return self._t0 + run.script.positions[run.pos] / self.settings.rate

    # --- both -----------------------------------------------------------------------------------

    def _watch(self) -> None:
        """Cancel commands waiting longer than the timeout (their late replies are dropped)."""
        timeout = self.settings.timeout
        deadline = time.perf_counter() - timeout
        for run in self._runs:
            fut = run.fut
            if fut is not None and run.sent_at < deadline and not fut.done():
                fut.cancel()
        self._watchdog = self._loop.call_later(min(1.0, timeout / 4), self._watch)

    def _send(self, run: _UserRun, fresh: bool) -> None:
        """Send the user's current command (again, after `busy`, when not `fresh`)."""
        script = run.script
        rate = self.settings.rate
        while True:
            pos = run.pos
            if pos >= len(script.texts):
                run.busy = False
                self._user_done(run)
                return
            if rate and pos >= run.due:
                run.busy = False  # waits for its release
                return
            try:
                fut = run.client.send(script.texts[pos], txn=script.txns[pos], timeout=None)
            except (ConnectionLost, ValueError) as exc:
                now = time.perf_counter()
                code = LOST if isinstance(exc, ConnectionLost) else CLIENT_ERROR
                self.recorder.record(now, 0.0, script.kinds[pos], code)
                run.pos = pos + 1
                fresh = True
                continue
            run.sent_at = now = time.perf_counter()
            if fresh:
                run.started = self._scheduled(run) if rate else now
            run.fut = fut
            run.busy = True
            fut.add_done_callback(run.on_reply)
            return

    def _reply_handler(self, run: _UserRun) -> Callable[[asyncio.Future[Reply]], None]:
        recorder = self.recorder
        counters = self.counters
        kinds = self.plan.kinds
        script = run.script
        send = self._send
        perf_counter = time.perf_counter

        def on_reply(fut: asyncio.Future[Reply]) -> None:
            now = perf_counter()
            pos = run.pos
            kind = script.kinds[pos]
            run.fut = None
            try:
                reply = fut.result()
            except (asyncio.CancelledError, RequestTimeout):  # cancelled by the watchdog
                code: str | None = TIMEOUT
            except ConnectionLost:
                code = LOST
            except Exception:  # any other failure ends this command only
                code = CLIENT_ERROR
            else:
                counters.replies += 1
                if reply.cmd != kinds[kind]:
                    counters.mismatched += 1
                if reply.ok:
                    code = None
                else:
                    code = reply.code
                    if code is _BUSY:
                        counters.busy_retries += 1
                        self._loop.call_later(self.settings.busy_retry_delay, send, run, False)
                        return
                    code = str(code)
            recorder.record(now, now - run.started, kind, code)
            run.pos = pos + 1
            send(run, True)

        return on_reply


async def connect_all(host: str, port: int, count: int, token: str | None, *,
                      timeout: float = 60.0) -> list[DaytradeClient]:
    """`count` connections, each AUTHed as the operator when a token is given."""
    clients = await asyncio.gather(*(DaytradeClient.connect(host, port, timeout=timeout)
                                     for _ in range(count)))
    if token is not None:
        replies = await asyncio.gather(*(client.auth(token) for client in clients))
        refused = [r for r in replies if not r.ok]
        if refused:
            await close_all(clients)
            raise PermissionError(f"AUTH refused: {refused[0].code}: {refused[0].message}")
    return list(clients)


async def close_all(clients: list[DaytradeClient]) -> None:
    await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
