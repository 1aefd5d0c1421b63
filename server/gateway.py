"""The Twisted gateway: client connections, routing to shards, pushed events.

One `ClientConnection` per TCP client, a thin adapter: the session with the client (line
splitting, login, the access rule, flow control, replies) is a `Session` without I/O
(server/session.py); the connection feeds it bytes and answers and performs its actions: write,
route a line to the shard that owns its user, ask the directory, pause reading, close.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from server.auth import LoginLimiter, hash_password, verify_password
from server.session import GatewaySettings, Session
from server.session_actions import (
    ActFor,
    Action,
    AskAccountExists,
    CheckPassword,
    Close,
    CollectStats,
    OpenAccount,
    PasswordCheck,
    PauseReading,
    Question,
    ResumeReading,
    Route,
    Send,
    SetPassword,
    WatchUser,
)
from server.shard_pool import ShardPool
from server.shards.channel import Frame
from server.shards.service import now_ms, shard_of
from server.store.journal_port import Directory
from server.txns import TxnAllocator

__all__ = ["ClientConnection", "Gateway", "GatewaySettings", "StoreThread", "TxnAllocator"]

log = logging.getLogger("daytrade.gateway")


class StoreThread:
    """Runs blocking directory calls (credentials, and password hashing) on a thread of its own."""

    def __init__(self, open_store: Callable[[], Directory]) -> None:
        self._open = open_store
        self._local = threading.local()
        self._pool = ThreadPool(1, 1, name="daytrade-store")
        self._pool.start()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        from twisted.internet import reactor

        def run() -> Any:
            store = getattr(self._local, "store", None)
            if store is None:
                store = self._local.store = self._open()
            return fn(store, *args)

        return threads.deferToThreadPool(reactor, self._pool, run)

    def stop(self) -> None:
        """Idempotent."""
        if not self._pool.joined:
            self._pool.stop()


class Gateway(Factory):
    """Shared state of all client connections."""

    def __init__(self, pool: ShardPool, store_thread: StoreThread, operator_token: str,
                 txns: TxnAllocator, settings: GatewaySettings | None = None,
                 reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.pool = pool
        self.store = store_thread
        self.operator_token = operator_token
        self.txns = txns
        self.settings = settings or GatewaySettings()
        self.limiter = LoginLimiter()
        self.sessions: dict[str, set[ClientConnection]] = {}
        self.watchers: dict[str, set[ClientConnection]] = {}
        self.connections: set[ClientConnection] = set()
        self.counters: dict[str, int] = {"lines": 0, "connections": 0, "bad_lines": 0,
                                         "busy": 0, "login_failures": 0}

    def buildProtocol(self, addr: Any) -> ClientConnection:  # noqa: N802
        return ClientConnection(self, addr)

    def push_event(self, user: str, event_json: str) -> None:
        data = event_json.encode() + b"\n"
        for conn in self.sessions.get(user, ()):
            conn.write_raw(data)
        for conn in self.watchers.get(user, ()):
            conn.write_raw(data)

    def close_all(self) -> None:
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.loseConnection()


@implementer(IPushProducer, IHalfCloseableProtocol)
class ClientConnection(TimeoutMixin, Protocol):
    """One client: feeds its `Session` (server/session.py) and performs the actions it returns.

    Half-closeable: the end of the client's input (`nc -N`, a pipe, `shutdown(SHUT_WR)`) is a
    QUIT without its reply. Idle connections are closed by `TimeoutMixin`.
    """

    def __init__(self, gateway: Gateway, addr: Any) -> None:
        self.gw = gateway
        self.addr = addr
        self.session = Session(addr, gateway.operator_token, gateway.txns, gateway.limiter,
                               gateway.counters, gateway.settings)
        self.callLater = gateway.reactor.callLater  # TimeoutMixin's clock
        self._closed = False
        self._acting_for: str | None = None  # whose pushed events come here
        self._watching: set[str] = set()

    # --- connection life ----------------------------------------------------------------------

    def connectionMade(self) -> None:  # noqa: N802
        self.gw.connections.add(self)
        self.gw.counters["connections"] += 1
        self.transport.registerProducer(self, True)
        if self.gw.settings.idle_timeout > 0:
            self.setTimeout(self.gw.settings.idle_timeout)

    def connectionLost(self, reason: Failure = None) -> None:  # noqa: N802
        self._closed = True
        self.setTimeout(None)
        self.gw.connections.discard(self)
        self._act_for(None)
        for user in self._watching:
            conns = self.gw.watchers.get(user)
            if conns is not None:
                conns.discard(self)
                if not conns:
                    del self.gw.watchers[user]
        self._watching.clear()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.resetTimeout()
        self._perform(self.session.receive(data, now_ms()))

    def readConnectionLost(self) -> None:  # noqa: N802
        """End of input: answer what came before it (PROTOCOL.md), then close."""
        self._perform(self.session.input_ended())

    def writeConnectionLost(self) -> None:  # noqa: N802
        """The client can no longer read: nothing it sent needs an answer any more."""
        if self.transport is not None:
            self.transport.loseConnection()

    # --- producer: the transport says whether the client reads its replies --------------------

    def pauseProducing(self) -> None:  # noqa: N802
        self._perform(self.session.output_paused())

    def resumeProducing(self) -> None:  # noqa: N802
        self._perform(self.session.output_resumed())

    def stopProducing(self) -> None:  # noqa: N802
        pass

    # --- performing the session's actions -----------------------------------------------------

    def _perform(self, actions: list[Action]) -> None:
        refused = False
        for action in actions:
            if self._closed:
                return
            kind = type(action)
            if kind is Route:  # the hot path: the trading lines
                refused = not self._route(action) or refused
            elif kind is Send:
                self.write_raw(action.data)
            elif kind is PauseReading or kind is ResumeReading:
                # Whatever the action says, the session's state now: a write performed before
                # it may have paused the session again (the transport calls pauseProducing when
                # its buffer fills), which would make a ResumeReading later in the list stale.
                if self.session.reading:
                    self.transport.resumeProducing()
                else:
                    self.transport.pauseProducing()
            elif kind is Close:
                self.transport.loseConnection()
                self._closed = True
            elif kind is ActFor:
                self._act_for(action.user)
            elif kind is WatchUser:
                self.gw.watchers.setdefault(action.user, set()).add(self)
                self._watching.add(action.user)
            else:
                refused = not self._ask(action) or refused
        if refused:
            self._perform(self.session.settle())

    def _route(self, action: Route) -> bool:
        """Send each line to its shard; False if a shard's queue was full for one of them."""
        pool = self.gw.pool
        shards, submit, deliver = pool.count, pool.submit, self._deliver
        kind = Frame.COMMAND  # looked up once: an Enum member costs ~1,000 instructions (3.11)
        stamp = action.stamp
        all_sent = True
        for routed in action.lines:
            user, txn, command, line = routed
            index = shard_of(user, shards) if user is not None else 0
            if not submit(index, kind, (stamp, line), deliver, txn, command):
                all_sent = False
                self._perform(self.session.line_refused(routed))
        return all_sent

    def _deliver(self, lines: list[bytes], code: str | None) -> None:
        self.write_raw(b"\n".join(lines) + b"\n")  # first: QUIT's goodbye comes after it
        self._perform(self.session.answered(len(lines)))

    def _ask(self, action: Action) -> bool:
        """Put a session's question to the directory or the shards; False if a shard's queue
        was full."""
        session = self.session
        if isinstance(action, CheckPassword):
            cmd = action.command
            self._answer(self.gw.store.call(check_password, cmd.user, cmd.password), action,
                         lambda outcome: session.password_checked(action, outcome, now_ms()))
        elif isinstance(action, SetPassword):
            cmd = action.command
            self._answer(self.gw.store.call(set_password, cmd.user, cmd.password), action,
                         lambda _: session.password_set(action, now_ms()))
        elif isinstance(action, CollectStats):
            self._answer(self.gw.pool.stats(), action,
                         lambda shards: session.stats_collected(action, self._stats(shards)))
        elif isinstance(action, OpenAccount):
            user = action.command.user

            def opened(lines: list[bytes], code: str | None) -> None:
                result = json.loads(lines[0]).get("result", {})
                self._perform(session.account_opened(action, bool(result.get("created")),
                                                     now_ms()))

            if not self.gw.pool.submit(shard_of(user, self.gw.pool.count), Frame.OPEN,
                                       (action.stamp, user), opened, action.command.txn,
                                       "LOGIN"):
                self._perform(session.shard_busy(action, now_ms()))
                return False
        elif isinstance(action, AskAccountExists):
            cmd = action.command

            def exists(answers: list[Any], code: str | None) -> None:
                found = None if code is not None else bool(answers[0]["exists"])
                self._perform(session.account_exists(action, found))

            if not self.gw.pool.submit(shard_of(cmd.user, self.gw.pool.count), Frame.EXISTS,
                                       (cmd.user,), exists, cmd.txn, cmd.NAME):
                self._perform(session.shard_busy(action, now_ms()))
                return False
        else:
            raise TypeError(f"no way to perform {action!r}")
        return True

    def _answer(self, d: Deferred[Any], question: Question,
                then: Callable[[Any], list[Action]]) -> None:
        """Perform what the session makes of `d`'s result, or of its failure."""

        def failed(failure: Failure) -> None:
            log.error("%s failed: %s", question.command.NAME, failure.getTraceback())
            self._perform(self.session.failed(question, now_ms()))

        d.addCallbacks(lambda result: self._perform(then(result)), failed)

    def _stats(self, shards: list[dict[str, Any]]) -> dict[str, Any]:
        return {"gateway": dict(self.gw.counters, open=len(self.gw.connections),
                                recoveries=len(self.gw.pool.recoveries)),
                "shards": shards}

    def _act_for(self, user: str | None) -> None:
        """Pushed events of `user` (None: of nobody) now come to this connection."""
        old = self._acting_for
        if old is not None:
            conns = self.gw.sessions.get(old)
            if conns is not None:
                conns.discard(self)
                if not conns:
                    del self.gw.sessions[old]
        self._acting_for = user
        if user is not None and not self._closed:
            self.gw.sessions.setdefault(user, set()).add(self)

    def write_raw(self, data: bytes) -> None:
        if not self._closed and self.transport is not None:
            # Twisted's public write. Sending straight to the socket when nothing was queued
            # read private attributes of tcp.Connection and saved ~0.9 us a command of the
            # gateway's (its own figure), about 1.5% of the server's CPU per command: short of
            # the 2% a trick must buy.
            self.transport.write(data)


# --- store work, run on the store thread -----------------------------------------------------


def check_password(store: Directory, user: str, password: str) -> PasswordCheck:
    """Whether `password` is `user`'s."""
    stored = store.get_password_hash(user)
    if stored is None:
        # As slow as a wrong password, so that timing does not tell which ids have one.
        verify_password(password, _DUMMY_HASH)
        return PasswordCheck.NO_PASSWORD
    return PasswordCheck.MATCHES if verify_password(password, stored) else PasswordCheck.WRONG


_DUMMY_HASH = hash_password("a password nobody has")


def set_password(store: Directory, user: str, password: str) -> None:
    store.set_password_hash(user, hash_password(password))
