"""A small non-blocking Redis client for the Twisted reactor: RESP over one pipelined connection.

Why not a library: measured side by side (docs/measurements/redis_client_vs_txredisapi.py: one
process, a private redis-server, the clients alternating, calls in pipelined bursts of 100; on a
loaded machine, 2026-12-04, so the ratios count more than the figures), this client costs the
shard 2.4-7x less CPU per call than txredisapi 1.6 (which also parses with hiredis), and 4.5-15x
less than redis-py 8.2's asyncio client on Twisted's asyncio reactor, which that client needs:

    us of CPU per call         epoll reactor, 3 x 20,000     asyncio reactor, 2 x 5,000
                               this client   txredisapi      this client   redis.asyncio
    get-or-lock, a hit         15.8-21.5     47.6-63.9       26.2-30.8     121.5-137.4
    store (SET PX + unlock)    19.0-25.3     45.6-59.6       17.1-19.6     108.0-136.8
    GET                         5.3-9.1      37.6-56.9       11.2-12.0     117.2-123.7
    SET PX                      7.7-10.9     43.8-60.3        9.5-9.5      109.9-139.0
    MGET of 20 quotes          15.4-25.9     68.7-99.9       16.8-21.5     133.4-146.3

That advantage does not show in the bench, though: the shards make about 0.06 Redis calls a
command (a quote is mostly found in the shard's own dict), and in `daytrade bench final_2019
--embedded --quote-latency legacy` with txredisapi behind a thin adapter (execute, run_script and
close, its errors mapped to these), alternated back to back on the same loaded machine, the two
shards used 85.7 / 86.4 s of CPU with this client and 85.5 / 74.5 s with txredisapi (3,496 /
3,030 against 3,647 / 4,732 commands/s: noise). What keeps this client is what txredisapi lacks:
while Redis is down its calls wait for a connection instead of failing (a GET to a closed port had
not fired after 3 s), where the quote cache needs a prompt failure to go to the quote server, so
the reliability battery's Redis test (paused, flushed, then stopped mid-run) did not finish in
300 s with it (20.7 s with this client); and it takes no reactor (it uses the global one), so no
test can drive its timeouts on a fake clock. Giving it both would rebuild this module's watchdog
on top of it. redis-py's asyncio client would force the asyncio reactor on every shard process
(they run Twisted's default, epoll), and its sync client costs a thread hand-off per call and
holds a pool thread while Redis is slow.

Here every command is written to one TCP connection as soon as it is issued (writes in one reactor
turn leave in one packet, so a burst pipelines by itself) and replies are parsed by hiredis's C
reader, which redis-py uses for the same job.

Failure model: a command that gets no reply within `timeout` seconds, a lost connection or a failed
connect fails *every* pending command with RedisUnavailable and drops the connection (FIFO replies
can no longer be matched once one is given up); the next command reconnects. Deciding when to try
again is the caller's business (the quote cache backs off).
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConnector, IDelayedCall, IReactorTCP, IReactorTime
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure


class RedisError(Exception):
    """A Redis command failed."""


class RedisReplyError(RedisError):
    """Redis answered the command with an error reply."""


class RedisUnavailable(RedisError):
    """No reply: the connection failed, was lost, or a command timed out."""


def encode_command(args: tuple[Any, ...]) -> bytes:
    """One command in RESP: an array of bulk strings (str as UTF-8, int and float as text)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int | float) and not isinstance(arg, bool):
            data = str(arg).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, run with EVALSHA (falling back to EVAL the first time Redis lacks it)."""

    body: str
    sha: str = field(init=False)  # computed once: every quote fetch runs two scripts

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.body.encode()).hexdigest())


@dataclass(slots=True)
class _Pending:
    deferred: Deferred[Any]
    deadline: float


#: How long after a missed deadline the watchdog looks again, the reactor having polled meanwhile.
_LAST_CHANCE_S = 0.01


class TwistedRedis:
    """A Redis connection for one reactor. `execute` pipelines; `close` ends it for good."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        db: int = 0,
        password: str | None = None,
        timeout: float = 0.25,
        reactor: IReactorTCP | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor  # type: ignore[assignment]
        self.host = host
        self.port = port
        self.db = db
        self.password = password
        self.timeout = timeout
        self._reactor = reactor
        self._clock: IReactorTime = reactor  # type: ignore[assignment]
        self._pending: deque[_Pending] = deque()
        self._unsent: list[bytes] = []  # written once the connection is up
        self._factory: _RedisFactory | None = None
        self._connector: IConnector | None = None
        self._protocol: _RedisProtocol | None = None
        self._alive: set[_RedisFactory] = set()
        self._watchdog: IDelayedCall | None = None
        self._closed = False
        self._closing: list[Deferred[None]] = []

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> TwistedRedis:
        """A client for `redis://[[user]:password@]host[:port][/db]`."""
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"only redis:// URLs are supported, not {url!r}")
        path = parts.path.lstrip("/")
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or 6379,
            db=int(path) if path else 0,
            password=unquote(parts.password) if parts.password else None,
            **kwargs,
        )

    @property
    def connected(self) -> bool:
        """True while a connection is up."""
        return self._protocol is not None

    def execute(self, *args: Any) -> Deferred[Any]:
        """Send one command; the Deferred fires with its reply (bytes, int, list, None) or fails
        with RedisReplyError or RedisUnavailable."""
        if self._closed:
            return _failed(RedisUnavailable("client closed"))
        data = encode_command(args)
        pending = _Pending(Deferred(), self._clock.seconds() + self.timeout)
        self._pending.append(pending)
        if self._protocol is not None:
            self._protocol.transport.write(data)
        else:
            self._unsent.append(data)
            if self._factory is None:
                self._connect()
        if self._watchdog is None:
            self._watchdog = self._clock.callLater(self.timeout, self._check_deadline)
        return pending.deferred

    def run_script(self, script: Script, keys: list[str], args: list[Any]) -> Deferred[Any]:
        """Run `script` with KEYS and ARGV."""
        d = self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

        def load_if_missing(failure: Failure) -> Any:
            if failure.check(RedisReplyError) and str(failure.value).startswith("NOSCRIPT"):
                return self.execute("EVAL", script.body, len(keys), *keys, *args)
            return failure

        return d.addErrback(load_if_missing)

    def close(self) -> Deferred[None]:
        """Fail what is pending and disconnect; the Deferred fires once every socket is closed."""
        self._closed = True
        self._drop(RedisUnavailable("client closed"))
        if not self._alive:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._closing.append(d)
        return d

    # -- connection plumbing ------------------------------------------------------------------
    # At most one connection is current (`_factory`); a dropped one may still be closing, which
    # `_alive` tracks so that `close` can wait for it.

    def _connect(self) -> None:
        handshake = []
        if self.password is not None:
            handshake.append(encode_command(("AUTH", self.password)))
        if self.db:
            handshake.append(encode_command(("SELECT", self.db)))
        for data in reversed(handshake):
            # Their replies come first; a failure fails the connection, not a user's command.
            d: Deferred[Any] = Deferred()
            d.addErrback(self._handshake_failed)
            self._pending.appendleft(_Pending(d, self._clock.seconds() + self.timeout))
            self._unsent.insert(0, data)
        factory = _RedisFactory(self)
        self._factory = factory
        self._alive.add(factory)
        self._connector = self._reactor.connectTCP(
            self.host, self.port, factory, timeout=self.timeout
        )

    def _handshake_failed(self, failure: Failure) -> None:
        self._drop(RedisUnavailable(f"handshake failed: {failure.getErrorMessage()}"))

    def _connected(self, factory: _RedisFactory, protocol: _RedisProtocol) -> bool:
        if factory is not self._factory:
            return False
        self._protocol = protocol
        if self._unsent:
            protocol.transport.write(b"".join(self._unsent))
            self._unsent.clear()
        return True

    def _reply(self, reply: Any) -> None:
        if not self._pending:
            self._drop(RedisUnavailable("reply to no command"))
            return
        pending = self._pending.popleft()
        if isinstance(reply, hiredis.ReplyError):
            pending.deferred.errback(Failure(RedisReplyError(str(reply))))
        else:
            pending.deferred.callback(reply)

    def _check_deadline(self, last_chance: bool = False) -> None:
        self._watchdog = None
        if not self._pending:
            return
        now = self._clock.seconds()
        head = self._pending[0]
        if head.deadline <= now:
            if not last_chance:
                # A reactor that was busy for longer than the timeout runs its timers before it
                # reads its sockets, so the reply may be waiting unread: let it poll once more,
                # then judge. Without this a busy shard dropped Redis 133 times in one
                # final_2019 run and fetched quotes the other shard was already fetching.
                self._watchdog = self._clock.callLater(_LAST_CHANCE_S, self._check_deadline,
                                                       True)
                return
            self._drop(RedisUnavailable(f"no reply within {self.timeout:g} s"))
        else:
            self._watchdog = self._clock.callLater(head.deadline - now, self._check_deadline)

    def _drop(self, error: RedisError) -> None:
        """Give up the current connection and every pending command."""
        protocol, connector = self._protocol, self._connector
        self._factory = self._protocol = self._connector = None
        self._unsent.clear()
        if protocol is not None:
            protocol.transport.abortConnection()
        elif connector is not None:
            connector.stopConnecting()
        self._fail_all(error)

    def _fail_all(self, error: RedisError) -> None:
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None
        pending, self._pending = self._pending, deque()
        for p in pending:
            p.deferred.errback(Failure(error))

    def _connection_ended(self, factory: _RedisFactory, reason: Failure) -> None:
        self._alive.discard(factory)
        if factory is self._factory:  # the current connection ended by itself
            self._factory = self._protocol = self._connector = None
            self._unsent.clear()
            self._fail_all(RedisUnavailable(f"connection lost: {reason.getErrorMessage()}"))
        if self._closed and not self._alive:
            closing, self._closing = self._closing, []
            for d in closing:
                d.callback(None)


def _failed(error: Exception) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(Failure(error))
    return d


class _RedisFactory(ClientFactory):
    def __init__(self, client: TwistedRedis) -> None:
        self.client = client

    def buildProtocol(self, addr: object) -> _RedisProtocol:
        return _RedisProtocol(self.client, self)

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        self.client._connection_ended(self, reason)


class _RedisProtocol(Protocol):
    def __init__(self, client: TwistedRedis, factory: _RedisFactory) -> None:
        self._client = client
        self._factory = factory
        self._reader = hiredis.Reader()

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)
        if not self._client._connected(self._factory, self):
            self.transport.abortConnection()  # dropped while it was connecting

    def dataReceived(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while self._client._protocol is self:  # once dropped, the rest is for nobody
                reply = self._reader.gets()
                if reply is False:
                    return
                self._client._reply(reply)
        except hiredis.ProtocolError as e:
            self._client._drop(RedisUnavailable(f"bad reply stream: {e}"))

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._client._connection_ended(self._factory, reason)
