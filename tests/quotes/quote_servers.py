"""Quote servers for tests on 127.0.0.1: the real simulator, and a scripted bad one; a reactor
whose connections are real and whose time is a fake clock the test advances."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from server.quotes.simulator import QuoteSimulator


class FakeClockReactor:
    """The real reactor's TCP (connections on 127.0.0.1 are real) with the time of a
    `task.Clock`: timers, timeouts and delays fire only when the test calls `advance`."""

    def __init__(self) -> None:
        self.clock = Clock()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def seconds(self) -> float:
        return self.clock.seconds()

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any,
                  **kwargs: Any) -> IDelayedCall:
        return self.clock.callLater(delay, f, *args, **kwargs)

    def getDelayedCalls(self) -> list[IDelayedCall]:
        return self.clock.getDelayedCalls()

    def connectTCP(self, *args: Any, **kwargs: Any) -> Any:
        return reactor.connectTCP(*args, **kwargs)

    # Sockets the quote client watches itself (its direct attempts).
    def addReader(self, selectable: Any) -> None:
        reactor.addReader(selectable)

    def addWriter(self, selectable: Any) -> None:
        reactor.addWriter(selectable)

    def removeReader(self, selectable: Any) -> None:
        reactor.removeReader(selectable)

    def removeWriter(self, selectable: Any) -> None:
        reactor.removeWriter(selectable)

    def listenTCP(self, *args: Any, **kwargs: Any) -> Any:
        return reactor.listenTCP(*args, **kwargs)


def listen_simulator(test: TestCase, on: Any = reactor,
                     **config: Any) -> tuple[QuoteSimulator, int]:
    """A QuoteSimulator on a free port of reactor `on`, stopped when the test ends."""
    simulator = QuoteSimulator(**config)
    port = simulator.listen(on, 0)
    test.addCleanup(port.stopListening)
    return simulator, port.getHost().port


@dataclass
class Behaviour:
    """What a scripted connection does once it has read a line: write `reply` (None: never), at
    once or `delay` seconds later on the server's clock, then close unless `close` is False."""

    reply: bytes | None = None
    delay: float = 0.0
    close: bool = True


@dataclass
class ScriptedQuoteServer:
    """Connection i follows behaviours[i] (the last one for the rest); records what it saw.
    Delays run on `clock` (the real reactor's unless a test gives its fake one)."""

    behaviours: list[Behaviour]
    clock: Any = reactor
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    _open: set[_Scripted] = field(default_factory=set)
    _idle_waiters: list[Deferred[None]] = field(default_factory=list)

    def listen(self, test: TestCase) -> int:
        port = reactor.listenTCP(0, _ScriptedFactory(self), interface="127.0.0.1")
        test.addCleanup(self._shut, port)
        return port.getHost().port

    def all_closed(self) -> Deferred[None]:
        """Fires once no connection is open (at once if none is)."""
        if not self._open:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle_waiters.append(d)
        return d

    def _closed(self, conn: _Scripted) -> None:
        self._open.discard(conn)
        if not self._open:
            waiters, self._idle_waiters = self._idle_waiters, []
            for d in waiters:
                d.callback(None)

    def _shut(self, port: Any) -> Deferred[None]:
        for conn in list(self._open):
            conn.transport.abortConnection()
        return port.stopListening().addCallback(lambda _: self.all_closed())


class _ScriptedFactory(Factory):
    def __init__(self, server: ScriptedQuoteServer) -> None:
        self.server = server

    def buildProtocol(self, addr: object) -> _Scripted:
        server = self.server
        behaviour = server.behaviours[min(server.connections, len(server.behaviours) - 1)]
        server.connections += 1
        return _Scripted(server, behaviour)


class _Scripted(Protocol):
    def __init__(self, server: ScriptedQuoteServer, behaviour: Behaviour) -> None:
        self.server = server
        self.behaviour = behaviour
        self.buffer = b""
        self.pending: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self.server._open.add(self)

    def dataReceived(self, data: bytes) -> None:
        if self.pending is not None or b"\n" in self.buffer:
            return
        self.buffer += data
        if b"\n" in self.buffer:
            self.server.requests.append(self.buffer)
            if self.behaviour.reply is not None and self.behaviour.delay == 0:
                self._reply()
            elif self.behaviour.reply is not None:
                self.pending = self.server.clock.callLater(self.behaviour.delay, self._reply)

    def _reply(self) -> None:
        assert self.behaviour.reply is not None
        self.transport.write(self.behaviour.reply)
        if self.behaviour.close:
            self.transport.loseConnection()

    def connectionLost(self, reason: object = None) -> None:
        if self.pending is not None and self.pending.active():
            self.pending.cancel()
        self.server._closed(self)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> Deferred[None]:
    """Fires once `predicate()` holds (polled every 10 ms); fails after `timeout` seconds."""
    d: Deferred[None] = Deferred()
    deadline = reactor.seconds() + timeout

    def poll() -> None:
        if predicate():
            d.callback(None)
        elif reactor.seconds() > deadline:
            d.errback(AssertionError(f"condition not met within {timeout} s"))
        else:
            reactor.callLater(0.01, poll)

    poll()
    return d
