"""Client of the legacy quote server: one TCP connection per request, a timeout, and hedging.

A fetch opens a connection and sends `SYM,user\\n`. If no valid reply has come `hedge_after`
seconds after the latest attempt went out (or an attempt failed), another, identical request goes
out on a new connection, up to `max_requests` in all; the first valid reply wins and the other
attempts are aborted. The fetch fails with QuoteUnavailable when every attempt failed or `timeout`
seconds passed. Replies are parsed strictly (`parse_quote_reply`): anything unexpected counts as a
failed attempt.

Why hedge: the legacy server answers about two thirds of requests after ~10 ms and the rest only
after 1-4 s, independently per request, so a fetch stays slow only when every one of its attempts
is (1/3 with one attempt, 1/9 with two, 1/27 with three). How early to hedge depends on
how late a fast reply arrives on a loaded machine, not only on the server's 10 ms
(DEFAULT_HEDGE_AFTER).

Hedges are capped by a budget, whatever the server does: every fetch earns `hedge_budget - 1`
extra requests (hedges and retries after a failed attempt), plus a reserve of `HEDGE_RESERVE` to
start with, and a hedge the budget cannot pay for is not sent (the fetch waits for the attempts it
has). So `requests_sent <= hedge_budget * fetches + HEDGE_RESERVE` always holds, even when a slow
server makes every attempt outlast `hedge_after`, where hedging without a cap would multiply the
load on a server that is already struggling.
"""

from __future__ import annotations

import errno
import os
import re
import socket
from typing import Any

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConnector, IDelayedCall, IReactorTCP, IReactorTime
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure

from protocol.money import parse_cents
from protocol.quote import PriceQuote
from server.quotes.errors import QuoteUnavailable

#: Seconds without a reply before a fetch sends its next attempt. The legacy server's fast replies
#: take ~10 ms on an idle machine, but on a busy one (final_2019 at --rate 10000 on 2 cores) only
#: 16 % of fetches ended within 25 ms and 39 % within 50 ms in one run with other load on the
#: machine: a hedge after 30 ms (3 requests at most) fired for fast replies too, spent the budget,
#: and measured worse in runs without other load too (p99 980-1281 ms against 634 ms).
DEFAULT_HEDGE_AFTER = 0.25

#: Requests per fetch at most, hedges included.
DEFAULT_MAX_REQUESTS = 2

#: Requests per fetch on average at most, hedges included (see the module's docstring).
DEFAULT_HEDGE_BUDGET = 1.45

#: Extra requests a client may send beyond its budget (a burst allowance: the first fetches of a
#: quiet client may hedge too).
HEDGE_RESERVE = 10.0

#: Upper bounds (ms) of the buckets of `LegacyQuoteClient.fetch_ms` (the last bucket is open).
FETCH_MS_BUCKETS = (25, 50, 100, 250, 1_000, 2_000)

_TIMESTAMP = re.compile(r"[0-9]{1,16}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1
_MAX_REPLY = 1024


class BadQuoteReply(ValueError):
    """A reply line that is not a valid quote for the request."""


def parse_quote_reply(line: bytes, symbol: str, user: str) -> PriceQuote:
    """The quote in `line` (without its `\\n`; a trailing `\\r` is allowed), or BadQuoteReply.

    The line must be `price,SYM,user,timestamp_ms,cryptokey` with the requested symbol and user,
    a price `^[0-9]{1,10}(\\.[0-9]{1,2})?$` above zero, an integer timestamp and a non-empty
    cryptokey free of control characters.
    """
    if line.endswith(b"\r"):
        line = line[:-1]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise BadQuoteReply("reply is not UTF-8") from None
    fields = text.split(",")
    if len(fields) != 5:
        raise BadQuoteReply(f"reply has {len(fields)} fields, not 5")
    price_text, got_symbol, got_user, time_text, key = fields
    if got_symbol != symbol:
        raise BadQuoteReply(f"reply is for symbol {got_symbol!r}, not {symbol!r}")
    if got_user != user:
        raise BadQuoteReply(f"reply is for user {got_user!r}, not {user!r}")
    price = parse_cents(price_text)
    if price is None or price <= 0:
        raise BadQuoteReply(f"bad price {price_text!r}")
    if not _TIMESTAMP.fullmatch(time_text):
        raise BadQuoteReply(f"bad timestamp {time_text!r}")
    if not key or _CONTROL.search(key):
        raise BadQuoteReply("empty cryptokey or one with control characters")
    return PriceQuote(symbol, price, int(time_text), key, user, fresh=True)


class LegacyQuoteClient:
    """Fetches quotes from the legacy quote server at host:port.

    Counters: `fetches` (calls of `fetch`), `requests_sent` (connections opened, hedges
    included), `failures` (fetches that ended in QuoteUnavailable), `hedges` (extra requests
    sent, on the timer or after a failed attempt), `hedges_won` (fetches won by an extra
    request), `hedges_refused` (extra requests the budget did not allow), `fetch_ms` (fetches
    that ended within each bound of FETCH_MS_BUCKETS, and beyond the last).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 5.0,
        hedge_after: float = DEFAULT_HEDGE_AFTER,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        hedge_budget: float = DEFAULT_HEDGE_BUDGET,
        reactor: IReactorTCP | None = None,
        direct: bool = True,
    ) -> None:
        if hedge_after < 0 or max_requests < 1 or hedge_budget < 1:
            raise ValueError("need hedge_after >= 0, max_requests >= 1 and hedge_budget >= 1")
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor  # type: ignore[assignment]
        self.host = host
        self.port = port
        self.timeout = timeout
        self.hedge_after = hedge_after
        self.max_requests = max_requests
        self.hedge_budget = hedge_budget
        self._reactor = reactor
        # Direct sockets need an address that takes no lookup (a name goes through Twisted's
        # resolver); `direct=False` is for fake reactors that only record connectTCP calls.
        self._family = (socket.AF_INET if isIPAddress(host) else
                        socket.AF_INET6 if isIPv6Address(host) else None)
        self._direct = direct and self._family is not None
        self.fetches = 0
        self.requests_sent = 0
        self.failures = 0
        self.hedges = 0
        self.hedges_won = 0
        self.hedges_refused = 0
        self.fetch_ms = [0] * (len(FETCH_MS_BUCKETS) + 1)

    def counters(self) -> dict[str, int]:
        """The counters as flat numbers (fetch_ms as `fetch_le_25ms` ... `fetch_over_2000ms`)."""
        out = {"fetches": self.fetches, "requests_sent": self.requests_sent,
               "failures": self.failures, "hedges": self.hedges, "hedges_won": self.hedges_won,
               "hedges_refused": self.hedges_refused}
        for bound, n in zip(FETCH_MS_BUCKETS, self.fetch_ms):
            out[f"fetch_le_{bound}ms"] = n
        out[f"fetch_over_{FETCH_MS_BUCKETS[-1]}ms"] = self.fetch_ms[-1]
        return out

    def _fetch_ended(self, seconds: float) -> None:
        ms = seconds * 1000
        for i, bound in enumerate(FETCH_MS_BUCKETS):
            if ms <= bound:
                self.fetch_ms[i] += 1
                return
        self.fetch_ms[-1] += 1

    def may_hedge(self) -> bool:
        """Whether the budget pays for one more extra request now (counted if it does not)."""
        allowed = (self.hedges + 1
                   <= (self.hedge_budget - 1) * self.fetches + HEDGE_RESERVE)
        if not allowed:
            self.hedges_refused += 1
        return allowed

    def fetch(self, symbol: str, user: str) -> Deferred[PriceQuote]:
        """One fresh quote (fresh=True) for `symbol` in the name of `user`.

        Fails with QuoteUnavailable. Cancelling the Deferred aborts every attempt.
        """
        self.fetches += 1
        return _Fetch(self, symbol, user).result

    def _attempt(self, fetch: _Fetch) -> _Attempt | _DirectAttempt:
        """Send one request of `fetch` on a new connection."""
        self.requests_sent += 1
        if self._direct:
            return _DirectAttempt(fetch, self._reactor, (self.host, self.port), self._family)
        attempt = _Attempt(fetch)
        attempt.connector = self._reactor.connectTCP(self.host, self.port, attempt,
                                                     timeout=self.timeout)
        return attempt


class _Fetch:
    """One fetch: its attempts, the hedge timer and the overall timeout."""

    def __init__(self, client: LegacyQuoteClient, symbol: str, user: str) -> None:
        self._client = client
        self.symbol = symbol
        self.user = user
        self.request = f"{symbol},{user}\n".encode()
        self.result: Deferred[PriceQuote] = Deferred(self._cancel)
        self._attempts: list[_Attempt | _DirectAttempt] = []
        self._failed = 0
        self._last_error = "no attempt finished"
        clock: IReactorTime = client._reactor  # type: ignore[assignment]
        self._deadline: IDelayedCall | None = clock.callLater(client.timeout, self._time_out)
        self._hedge: IDelayedCall | None = None
        self._clock = clock
        self._started = clock.seconds()
        self._start_attempt()

    def _start_attempt(self) -> None:
        attempt = self._client._attempt(self)
        self._attempts.append(attempt)
        if len(self._attempts) > 1:
            self._client.hedges += 1
        if len(self._attempts) < self._client.max_requests and not self.result.called:
            self._hedge = self._clock.callLater(self._client.hedge_after, self._hedge_now)

    def _hedge_now(self) -> None:
        self._hedge = None
        if self._client.may_hedge():
            self._start_attempt()

    def attempt_succeeded(self, attempt: _Attempt, quote: PriceQuote) -> None:
        if self.result.called:
            return
        if attempt is not self._attempts[0]:
            self._client.hedges_won += 1
        self._finish(attempt)
        self._client._fetch_ended(self._clock.seconds() - self._started)
        self.result.callback(quote)

    def attempt_failed(self, attempt: _Attempt, error: str) -> None:
        if self.result.called:
            return
        self._failed += 1
        self._last_error = error
        if self._hedge is not None:  # don't wait for the hedge timer: try again now
            self._hedge.cancel()
            self._hedge = None
            if self._client.may_hedge():
                self._start_attempt()
                return
        if self._failed == len(self._attempts):
            self._fail(f"all {self._failed} requests failed; last: {error}")

    def _time_out(self) -> None:
        self._deadline = None
        self._fail(f"no valid reply within {self._client.timeout:g} s; last: {self._last_error}")

    def _fail(self, reason: str) -> None:
        self._finish(None)
        self._client.failures += 1
        self._client._fetch_ended(self._clock.seconds() - self._started)
        self.result.errback(Failure(QuoteUnavailable(self.symbol, reason)))

    def _finish(self, winner: _Attempt | None) -> None:
        for delayed in (self._deadline, self._hedge):
            if delayed is not None and delayed.active():
                delayed.cancel()
        self._deadline = self._hedge = None
        for attempt in self._attempts:
            if attempt is not winner:
                attempt.abort()

    def _cancel(self, _: Deferred[PriceQuote]) -> None:
        # Deferred.cancel then errbacks the result with CancelledError.
        self._finish(None)


class _Attempt(ClientFactory):
    """One connection of a fetch: sends the request, reads one line."""

    # A factory per connection: Twisted would log its start and stop for every quote request
    # (3-5% of a busy shard's main thread in a py-spy profile).
    noisy = False

    def __init__(self, fetch: _Fetch) -> None:
        self.fetch = fetch
        self.connector: IConnector | None = None
        self.protocol_instance: _QuoteReply | None = None
        self.done = False

    def buildProtocol(self, addr: object) -> _QuoteReply:
        self.protocol_instance = _QuoteReply(self)
        return self.protocol_instance

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        self.finish_failed(f"cannot connect: {reason.getErrorMessage()}")

    def finish_ok(self, quote: PriceQuote) -> None:
        if not self.done:
            self.done = True
            self.fetch.attempt_succeeded(self, quote)

    def finish_failed(self, error: str) -> None:
        if not self.done:
            self.done = True
            self.fetch.attempt_failed(self, error)

    def abort(self) -> None:
        if self.done:
            return  # it closed or is closing its connection itself
        self.done = True
        proto = self.protocol_instance
        if proto is not None and proto.transport is not None:
            proto.transport.abortConnection()
        elif self.connector is not None:
            self.connector.stopConnecting()


class _QuoteReply(Protocol):
    """Reads exactly one line; a close before its `\\n` or an over-long line fails the attempt."""

    def __init__(self, attempt: _Attempt) -> None:
        self._attempt = attempt
        self._buffer = b""

    def connectionMade(self) -> None:
        self.transport.write(self._attempt.fetch.request)

    def dataReceived(self, data: bytes) -> None:
        if self._attempt.done:
            return
        self._buffer += data
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > _MAX_REPLY:
                self._attempt.finish_failed("reply too long")
                self.transport.abortConnection()
            return
        line, rest = self._buffer[:end], self._buffer[end + 1 :]
        fetch = self._attempt.fetch
        try:
            if rest:
                raise BadQuoteReply("data after the reply line")
            quote = parse_quote_reply(line, fetch.symbol, fetch.user)
        except BadQuoteReply as e:
            self._attempt.finish_failed(str(e))
            self.transport.abortConnection()
            return
        self._attempt.finish_ok(quote)
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._attempt.finish_failed("connection closed before a complete reply")


class _DirectAttempt:
    """One connection of a fetch on a non-blocking socket that the reactor watches directly.

    On loopback a connect completes inside connect(), so the request goes out in the same
    reactor turn; connectTCP took three more turns (its deferred start, the connect, then the
    write) before the request left, and on a busy shard each turn is 20-50 ms: fetches at the
    start of final_2019 took 65-110 ms against the simulator's 20. Elsewhere it waits for the
    socket to be writable, like connectTCP. Replies are read and checked as `_QuoteReply` does.
    """

    def __init__(self, fetch: _Fetch, reactor: Any, address: tuple[str, int],
                 family: int) -> None:
        self.fetch = fetch
        self.done = False
        self._reactor = reactor
        self._buffer = b""
        self._unsent = fetch.request
        self._watching: tuple[bool, bool] = (False, False)  # reading, writing
        self._starting = True  # the fetch adds this attempt once it is made: fail it later
        self._sock: socket.socket | None = None
        try:
            self._sock = socket.socket(family, socket.SOCK_STREAM)
            self._sock.setblocking(False)
            err = self._sock.connect_ex(address)
        except OSError as exc:  # out of file descriptors, say
            err = exc.errno or errno.EIO
        if err in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self._send()
        else:
            self._fail(f"cannot connect: {os.strerror(err)}")
        self._starting = False

    # --- what the reactor calls (IReadDescriptor, IWriteDescriptor) --------------------------

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    def logPrefix(self) -> str:
        return "LegacyQuoteClient"

    def doWrite(self) -> None:
        assert self._sock is not None
        err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail(f"cannot connect: {os.strerror(err)}")
            return
        self._send()

    def doRead(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(_MAX_REPLY + 1)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(f"connection lost: {exc.strerror}")
            return
        if not data:
            self._fail("connection closed before a complete reply")
            return
        self._buffer += data
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > _MAX_REPLY:
                self._fail("reply too long")
            return
        line, rest = self._buffer[:end], self._buffer[end + 1:]
        try:
            if rest:
                raise BadQuoteReply("data after the reply line")
            quote = parse_quote_reply(line, self.fetch.symbol, self.fetch.user)
        except BadQuoteReply as e:
            self._fail(str(e))
            return
        self._close()
        if not self.done:
            self.done = True
            self.fetch.attempt_succeeded(self, quote)

    def connectionLost(self, reason: Failure) -> None:
        self._fail("connection closed before a complete reply")

    # --- what the fetch calls ------------------------------------------------------------------

    def finish_failed(self, error: str) -> None:
        if self.done:
            return
        if self._starting:  # reported in a later turn, as connectTCP does
            self._reactor.callLater(0, self.finish_failed, error)
            return
        self.done = True
        self.fetch.attempt_failed(self, error)

    def abort(self) -> None:
        if not self.done:
            self.done = True
            self._close()

    # --- internals -----------------------------------------------------------------------------

    def _send(self) -> None:
        assert self._sock is not None
        try:
            sent = self._sock.send(self._unsent)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:  # ENOTCONN: still connecting
                self._fail(f"cannot send: {exc.strerror}")
                return
            sent = 0
        self._unsent = self._unsent[sent:]
        self._watch(reading=not self._unsent, writing=bool(self._unsent))

    def _watch(self, *, reading: bool, writing: bool) -> None:
        was_reading, was_writing = self._watching
        if writing and not was_writing:
            self._reactor.addWriter(self)
        elif was_writing and not writing:
            self._reactor.removeWriter(self)
        if reading and not was_reading:
            self._reactor.addReader(self)
        elif was_reading and not reading:
            self._reactor.removeReader(self)
        self._watching = (reading, writing)

    def _fail(self, error: str) -> None:
        self._close()
        self.finish_failed(error)

    def _close(self) -> None:
        if self._sock is not None:
            self._watch(reading=False, writing=False)
            self._sock.close()
            self._sock = None
