"""The dashboard's one connection: owns the DaytradeClient, keeps it alive, reports in messages.

`open()` connects and logs in; from then a supervisor worker pings the server (round-trip time,
server clock offset) and, when the connection drops, reconnects with back-off and logs in again.
Every request goes through `request()`, which never raises: it returns an Outcome, a server error
or a client-side failure (`offline`, `connection_lost`, `timeout`, `connect_failed`) alike, and
posts it as a Logged message. State changes and pushed events are posted too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from textual.message import Message

from client_tui.clock import Clock, SystemClock
from protocol.client import ConnectionLost, DaytradeClient
from protocol.errors import ErrorCode
from protocol.replies import PushedEvent, Reply

#: Seconds to wait between reconnection attempts, the last repeated.
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0)
#: Seconds between PINGs while connected.
PING_EVERY = 5.0
#: Seconds a PING may take before the connection counts as dead.
PING_TIMEOUT = 5.0
#: Seconds to wait for a connection or for a reply.
TIMEOUT = 10.0
#: Login failures that retrying cannot fix: stop reconnecting and say so.
FINAL_LOGIN_ERRORS = {ErrorCode.UNAUTHORIZED, ErrorCode.LOCKED, ErrorCode.BAD_ARGUMENT,
                      ErrorCode.FORBIDDEN}


class ConnState(StrEnum):
    OFFLINE = "offline"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one request: the server's reply, or why there was none."""

    line: str
    ok: bool
    result: Mapping[str, Any] = field(default_factory=dict)
    code: str = ""
    message: str = ""
    latency_ms: float | None = None
    txn: int | None = None
    replayed: bool = False

    @classmethod
    def of(cls, line: str, reply: Reply, latency_ms: float) -> Outcome:
        if reply.ok:
            return cls(line, True, reply.result or {}, latency_ms=latency_ms, txn=reply.txn,
                       replayed=reply.replayed)
        return cls(line, False, {}, str(reply.code), reply.message or "", latency_ms, reply.txn,
                   reply.replayed)

    @classmethod
    def failed(cls, line: str, code: str, message: str,
               latency_ms: float | None = None) -> Outcome:
        return cls(line, False, {}, code, message, latency_ms)

    @property
    def error(self) -> str:
        """`code: message`, as the user sees a failure."""
        return f"{self.code}: {self.message}" if self.code else ""


class ClientLike(Protocol):
    """What the connection needs of a DaytradeClient (tests feed it recorded replies)."""

    @property
    def closed(self) -> bool: ...

    def send(self, line: str) -> Awaitable[Reply]: ...

    async def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


Connector = Callable[[str, int, Callable[[PushedEvent], object]], Awaitable[ClientLike]]


async def tcp_connect(host: str, port: int,
                      on_event: Callable[[PushedEvent], object]) -> ClientLike:
    """The real connector: a DaytradeClient over TCP."""
    return await DaytradeClient.connect(host, port, timeout=TIMEOUT, on_event=on_event)


def masked(line: str) -> str:
    """A request line fit for the log: LOGIN and PASSWD lose their password."""
    head = line.split(",", 2)
    if head[0].strip().upper() in ("LOGIN", "PASSWD") and len(head) == 3:
        return f"{head[0]},{head[1]},********"
    return line


class Connection:
    """The single owner of the server connection; posts its messages to `target` (the App)."""

    class StateChanged(Message):
        """The connection's state changed (or a PING measured a new round-trip time)."""

        def __init__(self, state: ConnState, detail: str, rtt_ms: float | None,
                     retry_at_ms: int | None = None, given_up: bool = False) -> None:
            super().__init__()
            self.state = state
            self.detail = detail
            self.rtt_ms = rtt_ms
            self.retry_at_ms = retry_at_ms
            #: Offline for good after a loss: reconnecting stopped (the login was refused).
            self.given_up = given_up

    class Logged(Message):
        """A request and its outcome (reply, server error or client-side failure)."""

        def __init__(self, outcome: Outcome) -> None:
            super().__init__()
            self.outcome = outcome

    class EventPushed(Message):
        """An unsolicited server event (`trigger_fired`, `pending_expired`)."""

        def __init__(self, event: PushedEvent) -> None:
            super().__init__()
            self.event = event

    class Restored(Message):
        """The connection came back after a loss and is logged in again: refresh everything."""

    def __init__(self, target: Any, *, connector: Connector = tcp_connect,
                 clock: Clock | None = None, ping_every: float = PING_EVERY,
                 ping_timeout: float = PING_TIMEOUT, backoff: tuple[float, ...] = BACKOFF) -> None:
        self._target = target
        self._connector = connector
        self._clock = clock or SystemClock()
        self.ping_every = ping_every
        self.ping_timeout = ping_timeout
        self.backoff = backoff
        self._client: ClientLike | None = None
        self._credentials: tuple[str, int, str, str] | None = None
        self._closing = False
        self.state = ConnState.OFFLINE
        self.detail = "not connected"
        self.rtt_ms: float | None = None
        #: Server clock minus ours (ms), from the last PING; expiry countdowns use it.
        self.server_offset_ms = 0
        self.attempt = 0

    # --- public ---------------------------------------------------------------------------

    @property
    def user(self) -> str:
        return self._credentials[2] if self._credentials else ""

    @property
    def address(self) -> str:
        return f"{self._credentials[0]}:{self._credentials[1]}" if self._credentials else ""

    @property
    def client(self) -> ClientLike | None:
        """The live client (tests close it to simulate a dropped connection)."""
        return self._client

    def server_now_ms(self) -> int:
        return self._clock.now_ms() + self.server_offset_ms

    async def open(self, host: str, port: int, user: str, password: str) -> Outcome:
        """Connect and LOGIN (the first LOGIN of a new user id signs it up); then stay connected."""
        await self._drop_client()
        self._closing = False
        self._set_state(ConnState.CONNECTING, f"connecting to {host}:{port}")
        client, outcome = await self._login(host, port, user, password)
        if client is None:
            self._set_state(ConnState.OFFLINE, outcome.error)
            return outcome
        self._client = client
        self._credentials = (host, port, user, password)
        await self._ping(client)
        self._set_state(ConnState.CONNECTED, f"logged in as {user} at {host}:{port}")
        self._target.run_worker(self._supervise(), name="connection", group="connection",
                                exclusive=True, exit_on_error=False)
        return outcome

    async def request(self, line: str) -> Outcome:
        """Send one request line and wait for its outcome; never raises."""
        client = self._client
        if client is None or client.closed or self.state != ConnState.CONNECTED:
            outcome = Outcome.failed(line, "offline",
                                     f"not connected ({self.state}); nothing was sent")
            self._target.post_message(self.Logged(outcome))
            return outcome
        return await self._send(client, line)

    async def close(self) -> None:
        """Close for good (no reconnection)."""
        self._closing = True
        await self._drop_client()
        self._set_state(ConnState.OFFLINE, "closed")

    # --- internals ------------------------------------------------------------------------

    async def _send(self, client: ClientLike, line: str, log: bool = True,
                    timeout: float | None = None) -> Outcome:
        started = self._clock.monotonic()
        try:
            if timeout is None:
                reply = await client.send(line)
            else:
                reply = await asyncio.wait_for(client.send(line), timeout)
        except ConnectionLost as exc:
            outcome = Outcome.failed(line, "connection_lost",
                                     f"{exc}; the command may or may not have applied",
                                     self._since(started))
        except TimeoutError:  # RequestTimeout, or our own PING deadline
            outcome = Outcome.failed(line, "timeout",
                                     "no reply in time; the command may or may not have applied",
                                     self._since(started))
        else:
            outcome = Outcome.of(line, reply, self._since(started))
        if log:
            shown = masked(line)
            if shown != line:
                outcome = Outcome(shown, outcome.ok, outcome.result, outcome.code,
                                  outcome.message, outcome.latency_ms, outcome.txn)
            self._target.post_message(self.Logged(outcome))
        return outcome

    def _since(self, started: float) -> float:
        return round((self._clock.monotonic() - started) * 1000, 1)

    async def _login(self, host: str, port: int, user: str,
                     password: str) -> tuple[ClientLike | None, Outcome]:
        try:
            client = await self._connector(host, port, self._on_event)
        except (OSError, TimeoutError) as exc:
            reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            outcome = Outcome.failed(f"connect {host}:{port}", "connect_failed", reason)
            self._target.post_message(self.Logged(outcome))
            return None, outcome
        outcome = await self._send(client, f"LOGIN,{user},{password}")
        if not outcome.ok:
            await client.close()
            return None, outcome
        return client, outcome

    async def _ping(self, client: ClientLike) -> bool:
        sent_ms = self._clock.now_ms()
        outcome = await self._send(client, "PING", log=False, timeout=self.ping_timeout)
        if not outcome.ok:
            self._target.post_message(self.Logged(outcome))
            return False
        self.rtt_ms = outcome.latency_ms
        pong = outcome.result.get("pong")
        if isinstance(pong, int):
            self.server_offset_ms = pong - (sent_ms + int((outcome.latency_ms or 0) / 2))
        return True

    async def _supervise(self) -> None:
        while not self._closing:
            client = self._client
            if client is None:
                return
            await self._watch(client)
            if self._closing:
                return
            self._client = None
            if not await self._reconnect():
                return
            self._target.post_message(self.Restored())

    async def _watch(self, client: ClientLike) -> None:
        """PING now and then until the connection closes (or stops answering, then close it)."""
        closed = asyncio.ensure_future(client.wait_closed())
        try:
            while not self._closing:
                done, _ = await asyncio.wait({closed}, timeout=self.ping_every)
                if done:
                    return
                if not await self._ping(client):
                    await client.close()  # a connection that cannot PING is as good as dead
                    return
                self._set_state(ConnState.CONNECTED, self.detail)
        finally:
            closed.cancel()

    async def _reconnect(self) -> bool:
        assert self._credentials is not None
        host, port, user, password = self._credentials
        last = "the connection was lost"
        self.attempt = 0
        while not self._closing:
            delay = self.backoff[min(self.attempt, len(self.backoff) - 1)]
            self.attempt += 1
            self._set_state(ConnState.RECONNECTING,
                            f"{last}; attempt {self.attempt} in {delay:g}s",
                            retry_at_ms=self._clock.now_ms() + int(delay * 1000))
            await asyncio.sleep(delay)
            if self._closing:
                return False
            client, outcome = await self._login(host, port, user, password)
            if client is not None:
                self._client = client
                await self._ping(client)
                self._set_state(ConnState.CONNECTED,
                                f"reconnected after {self.attempt} attempt(s)")
                return True
            last = outcome.error
            if outcome.code in FINAL_LOGIN_ERRORS:
                self._set_state(ConnState.OFFLINE, f"login refused on reconnect: {last}",
                                given_up=True)
                return False
        return False

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None and not client.closed:
            await client.close()

    def _set_state(self, state: ConnState, detail: str, retry_at_ms: int | None = None,
                   given_up: bool = False) -> None:
        self.state = state
        self.detail = detail
        self._target.post_message(self.StateChanged(state, detail, self.rtt_ms, retry_at_ms,
                                                    given_up))

    def _on_event(self, event: PushedEvent) -> None:
        self._target.post_message(self.EventPushed(event))
