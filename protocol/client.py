"""An asyncio client for the daytrade line protocol: many requests in flight, replies matched back.

Replies are matched by txn when the request carried one, otherwise first-in first-out among the
requests sent without one (the server answers each user's requests in order). Pushed events go to a
callback or to the `events` queue. This is the only module of `protocol` that does I/O.

Matching caveats, inherent in the protocol: FIFO matching of txn-less requests is exact only while
their replies come back in sending order, i.e. for one user per connection (replies for different
users may interleave); a reply that carries no txn (or an unknown one) is taken as the answer to the
oldest txn-less request. Use txns when pipelining for several users on one connection.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl as _ssl
from collections.abc import Callable
from typing import Any

from protocol.replies import DecodeError, PushedEvent, Reply, decode

log = logging.getLogger(__name__)

#: The longest reply line accepted (DUMPLOG's in-reply form carries up to 4 MB of XML, escaped).
MAX_LINE_BYTES = 64 * 1024 * 1024
#: Above this many bytes queued in the transport, `drain()` waits for the socket to catch up.
WRITE_HIGH_WATER = 1024 * 1024
#: Pushed events kept for a reader of `events` that falls behind (the oldest are dropped).
EVENTS_MAXSIZE = 10_000
#: Txns whose request timed out, remembered so that their late replies are dropped.
LATE_TXNS_KEPT = 65_536

_DEFAULT: Any = object()  # "use the client's timeout" (None means no timeout at all)


class ClientError(Exception):
    """Base of the client's own errors."""


class ConnectionLost(ClientError, ConnectionError):
    """The connection closed (by either side) before the reply came."""


class RequestTimeout(ClientError, TimeoutError):
    """No reply within the request's timeout; a reply arriving later is dropped.

    A TimeoutError, so `except asyncio.TimeoutError` catches it too.
    """


class _Wire(asyncio.Protocol):
    """The transport's callbacks, forwarded to the client (keeps them out of its public API)."""

    def __init__(self, client: DaytradeClient) -> None:
        self._client = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._client._attach(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self._client._on_data(data)

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._client._on_lost(exc)

    def pause_writing(self) -> None:
        self._client._write_paused = True

    def resume_writing(self) -> None:
        self._client._on_resume_writing()


class DaytradeClient:
    """One connection to a daytrade server. Create it with `await DaytradeClient.connect(...)`."""

    def __init__(self, *, timeout: float | None = 10.0,
                 on_event: Callable[[PushedEvent], object] | None = None,
                 events_maxsize: int = EVENTS_MAXSIZE) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._on_event = on_event
        #: Pushed events, when no `on_event` callback was given; bounded, dropping the oldest.
        self.events: asyncio.Queue[PushedEvent] = asyncio.Queue(events_maxsize)
        self._transport: asyncio.Transport | None = None
        self._by_txn: dict[int, asyncio.Future[Reply]] = {}
        self._fifo: collections.deque[asyncio.Future[Reply]] = collections.deque()
        # Replies still owed for txns whose request timed out or was abandoned: dropped on arrival.
        self._late: dict[int, int] = {}
        # (deadline, future, txn) in sending order; all share `timeout`, so deadlines ascend.
        self._timeline: collections.deque[tuple[float, asyncio.Future[Reply], int | None]] = (
            collections.deque())
        self._sweeper: asyncio.TimerHandle | None = None
        self._tick = 0.1 if timeout is None else min(0.1, max(0.005, timeout / 20))
        self._wbuf: list[str] = []
        self._flush_scheduled = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._tail: list[bytes] = []
        self._tail_size = 0
        self._closed = False
        self._lost: asyncio.Future[None] = self._loop.create_future()
        #: Replies that came after their request timed out or was cancelled (and were dropped).
        self.late_replies = 0
        #: Replies that matched no outstanding request (dropped).
        self.unmatched_replies = 0
        #: Server lines that were neither a reply nor an event (dropped).
        self.decode_errors = 0
        #: Pushed events dropped because `events` was full.
        self.dropped_events = 0

    # --- connecting and closing -------------------------------------------------------------

    @classmethod
    async def connect(cls, host: str, port: int, *, ssl: _ssl.SSLContext | bool | None = None,
                      timeout: float | None = 10.0,
                      on_event: Callable[[PushedEvent], object] | None = None,
                      events_maxsize: int = EVENTS_MAXSIZE) -> DaytradeClient:
        """Connect (within `timeout` seconds); `timeout` is also each request's default timeout.

        `on_event` is called with every PushedEvent; without it they go to `client.events`.
        """
        client = cls(timeout=timeout, on_event=on_event, events_maxsize=events_maxsize)
        connecting = client._loop.create_connection(lambda: _Wire(client), host, port, ssl=ssl)
        if timeout is None:
            await connecting
        else:
            await asyncio.wait_for(connecting, timeout)
        return client

    def _attach(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._sweeper = self._loop.call_later(self._tick, self._sweep)

    @property
    def timeout(self) -> float | None:
        """Seconds each request may wait for its reply by default (None: forever)."""
        return self._timeout

    @property
    def closed(self) -> bool:
        """True once the connection is closed, by us or by the server."""
        return self._closed

    @property
    def in_flight(self) -> int:
        """Requests sent whose replies have not come yet (timed-out txn-less ones included)."""
        return len(self._by_txn) + len(self._fifo)

    async def wait_closed(self) -> None:
        """Return once the connection has closed (for example because the server closed it)."""
        await asyncio.shield(self._lost)

    async def close(self) -> None:
        """Close the connection; every outstanding request fails with ConnectionLost."""
        if not self._closed:
            self._flush()
            self._shut(ConnectionLost("the client closed the connection"))
            if self._transport is not None:
                self._transport.close()
        if self._transport is not None and not self._lost.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._lost), 5.0)
            except TimeoutError:
                self._transport.abort()

    async def __aenter__(self) -> DaytradeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _on_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "the server closed the connection"
        self._shut(ConnectionLost(reason))
        if not self._lost.done():
            self._lost.set_result(None)

    def _shut(self, error: ConnectionLost) -> None:
        """Mark closed and fail everything outstanding with `error` (a fresh copy for each)."""
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        pending = [*self._by_txn.values(), *self._fifo, *self._drain_waiters]
        self._by_txn.clear()
        self._fifo.clear()
        self._timeline.clear()
        self._drain_waiters.clear()
        self._wbuf.clear()
        for fut in pending:
            if not fut.done():
                fut.set_exception(ConnectionLost(*error.args))

    # --- sending ----------------------------------------------------------------------------

    def send(self, line: str, *, txn: int | None = None,
             timeout: float | None = _DEFAULT) -> asyncio.Future[Reply]:
        """Queue one request line (without newline) and return the future of its Reply.

        With `txn`, the line goes out as `[txn] line` and its reply is matched by txn; `line` must
        then not carry a txn of its own. Writes are coalesced per event-loop turn; await `drain()`
        now and then when sending a great many. `timeout` overrides the client's (None: none).
        Raises ConnectionLost when closed, ValueError for a newline in `line` or a txn already in
        flight.
        """
        if self._closed:
            raise ConnectionLost("the connection is closed")
        if "\n" in line:
            raise ValueError("a request line cannot contain a newline")
        fut: asyncio.Future[Reply] = self._loop.create_future()
        if txn is None:
            self._fifo.append(fut)
            self._wbuf.append(line)
        else:
            previous = self._by_txn.setdefault(txn, fut)
            if previous is not fut:
                if not previous.done():
                    raise ValueError(f"txn {txn} is already in flight")
                # The earlier request was cancelled by its caller: its reply is still owed.
                self._by_txn[txn] = fut
                self._late[txn] = self._late.get(txn, 0) + 1
            self._wbuf.append(f"[{txn}] {line}")
        self._wbuf.append("\n")
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        if timeout is _DEFAULT:
            if self._timeout is not None:
                self._timeline.append((self._loop.time() + self._timeout, fut, txn))
        elif timeout is not None:
            timer = self._loop.call_later(timeout, self._expire, fut, txn)
            # An answered request must not stay referenced by its timer until it runs out.
            fut.add_done_callback(lambda _f: timer.cancel())
        return fut

    def request(self, command: str, *args: object, txn: int | None = None,
                timeout: float | None = _DEFAULT) -> asyncio.Future[Reply]:
        """Send `[txn] COMMAND,arg,arg...` (arguments as `str()` gives them); see `send`."""
        line = ",".join((command, *map(str, args))) if args else command
        return self.send(line, txn=txn, timeout=timeout)

    async def drain(self) -> None:
        """Write what is queued; wait while the socket's buffer is above the high-water mark."""
        self._flush()
        if self._write_paused and not self._closed:
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._wbuf or self._closed or self._transport is None:
            return
        text = "".join(self._wbuf)
        self._wbuf.clear()
        try:
            data = text.encode("utf-8", "surrogateescape")  # lets a caller send raw bytes
        except UnicodeEncodeError:
            data = text.encode("utf-8", "surrogatepass")  # invalid UTF-8: the server says so
        self._transport.write(data)

    def _on_resume_writing(self) -> None:
        self._write_paused = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # --- session helpers --------------------------------------------------------------------

    async def auth(self, token: str) -> Reply:
        """`AUTH,<token>`: act as the operator. The Reply says whether it worked."""
        return await self.send(f"AUTH,{token}")

    async def login(self, user: str, password: str) -> Reply:
        """`LOGIN,<user>,<password>` (the password is sent untrimmed, commas and all)."""
        return await self.send(f"LOGIN,{user},{password}")

    async def ping(self) -> Reply:
        """`PING`."""
        return await self.send("PING")

    async def quit(self) -> Reply:
        """`QUIT`: the server replies, then closes; returns once the connection is closed."""
        reply = await self.send("QUIT")
        await self.wait_closed()
        return reply

    # --- timeouts ---------------------------------------------------------------------------

    def _sweep(self) -> None:
        now = self._loop.time()
        timeline = self._timeline
        while timeline:
            deadline, fut, txn = timeline[0]
            if not fut.done() and deadline > now:
                break
            timeline.popleft()
            if not fut.done():
                self._expire(fut, txn)
        self._sweeper = self._loop.call_later(self._tick, self._sweep)

    def _expire(self, fut: asyncio.Future[Reply], txn: int | None) -> None:
        if fut.done():
            return
        if txn is not None and self._by_txn.get(txn) is fut:
            del self._by_txn[txn]
            late = self._late
            late[txn] = late.get(txn, 0) + 1
            if len(late) > LATE_TXNS_KEPT:
                del late[next(iter(late))]
        # A txn-less request keeps its place in the FIFO, so that its late reply is matched to
        # it (and dropped) rather than to the next request.
        what = "request" if txn is None else f"request with txn {txn}"
        fut.set_exception(RequestTimeout(f"no reply to the {what} in time"))

    # --- receiving --------------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        if self._closed:
            return
        end = data.rfind(b"\n")
        if end < 0:
            self._tail.append(data)
            self._tail_size += len(data)
            if self._tail_size > MAX_LINE_BYTES:
                log.error("server line longer than %d bytes; closing", MAX_LINE_BYTES)
                self._shut(ConnectionLost("the server sent an over-long line"))
                if self._transport is not None:
                    self._transport.abort()
            return
        if self._tail:
            self._tail.append(data)
            data = b"".join(self._tail)
            self._tail.clear()
            end = data.rfind(b"\n")
        rest = data[end + 1:]
        self._tail_size = len(rest)
        if rest:
            self._tail.append(rest)
        # One decode per chunk (complete lines only, so no UTF-8 sequence is cut): json.loads is
        # markedly cheaper on str than on bytes.
        for line in data[:end].decode("utf-8", "replace").split("\n"):
            if line:
                self._on_line(line)

    def _on_line(self, raw: str) -> None:
        try:
            message = decode(raw)
        except DecodeError as exc:
            self.decode_errors += 1
            log.warning("dropping a server line that is not a reply: %s: %r", exc, raw[:200])
            return
        if message.__class__ is PushedEvent:
            self._deliver(message)  # type: ignore[arg-type]
            return
        txn = message.txn  # type: ignore[union-attr]
        if txn is not None:
            late = self._late
            if late and txn in late:
                # Replies to one txn arrive in sending order: the first one owed is the late one.
                if late[txn] <= 1:
                    del late[txn]
                else:
                    late[txn] -= 1
                self.late_replies += 1
                return
            fut = self._by_txn.pop(txn, None)
            if fut is not None:
                if fut.done():  # cancelled by its caller
                    self.late_replies += 1
                else:
                    fut.set_result(message)  # type: ignore[arg-type]
                return
        if self._fifo:
            fut = self._fifo.popleft()
            if fut.done():  # timed out or cancelled
                self.late_replies += 1
            else:
                fut.set_result(message)  # type: ignore[arg-type]
            return
        self.unmatched_replies += 1
        log.warning("dropping a reply that matches no request: %r", raw[:200])

    def _deliver(self, event: PushedEvent) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("on_event callback failed for %s", event.event)
            return
        queue = self.events
        if queue.full():
            queue.get_nowait()
            self.dropped_events += 1
        queue.put_nowait(event)
