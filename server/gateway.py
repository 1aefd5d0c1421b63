"""The Twisted gateway: client connections, access rules, routing to shards, pushed events.

One `ClientConnection` per TCP client: it splits lines itself (no per-line re-split), answers
session commands, checks access, gives txn-less lines a txn, and hands trading commands to the
shard that owns the user. Flow control follows PROTOCOL.md: too many commands in flight or a full
output buffer stop reading the connection; a full shard queue or a rate overrun answer `busy`; ten
bad lines in a row close the connection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from protocol import commands as c
from protocol import reference
from protocol.commands import TRADING_NAMES
from protocol.errors import ErrorCode, ProtocolError
from protocol.parser import MAX_LINE_BYTES, parse_request, peek_request
from protocol.replies import Reply
from server.auth import (
    FAILURES_PER_CONNECTION,
    LoginLimiter,
    hash_password,
    token_matches,
    verify_password,
)
from server.shard_pool import ShardPool
from server.shards.channel import write_now
from server.shards.service import now_ms, shard_of
from server.store.journal_port import Directory

log = logging.getLogger("daytrade.gateway")
security = logging.getLogger("daytrade.security")

E = ErrorCode
_GARBAGE = (E.BAD_REQUEST, E.UNKNOWN_COMMAND)
MAX_GARBAGE_IN_A_ROW = 10
#: Every failed LOGIN says this, whatever failed, so that it never tells whether an id exists.
WRONG_LOGIN = "wrong user id or password"


@dataclass
class GatewaySettings:
    """Tunables of the gateway (defaults follow PROTOCOL.md)."""

    max_in_flight: int = 2_000  # per connection, before reading pauses
    idle_timeout: float = 15 * 60.0
    rate_limit: float = 0.0  # commands/s per connection; 0: unlimited
    rate_burst: int = 1_000


class TxnAllocator:
    """The one allocator of txns in the system: for lines that came without one, and for the
    shards' trigger firings; each is above every txn seen, this run or before it.

    Kept in memory, so assigning one never waits for the store; `start` is the highest txn in
    any shard's journal. A txn given to a shard's firing is above every command the gateway had
    routed before, and the channel to the shard keeps order, so the firing runs after those.
    """

    def __init__(self, start: int = 0) -> None:
        self.max_seen = start

    def seen(self, txn: int) -> None:
        if txn > self.max_seen:
            self.max_seen = txn

    def next(self) -> int:
        self.max_seen += 1
        return self.max_seen

    def reserve(self, count: int) -> int:
        """`count` consecutive fresh txns; returns the first."""
        first = self.max_seen + 1
        self.max_seen += count
        return first


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
class ClientConnection(Protocol):
    """One client: line splitting, session state, routing.

    Half-closeable: the end of the client's input (`nc -N`, a pipe, `shutdown(SHUT_WR)`) is a
    QUIT without its reply. Every line already received is answered, then the server closes.
    """

    def __init__(self, gateway: Gateway, addr: Any) -> None:
        self.gw = gateway
        self.addr = addr
        self._buf = b""
        self._discarding = False
        self.role: str | None = None  # None, "operator" or "user"
        self.user: str | None = None
        self.inflight = 0
        self._garbage = 0
        self._login_failures = 0
        self._paused_inflight = False
        self._paused_output = False
        self._paused_login = False
        self._idle: Any = None
        self._tokens = float(gateway.settings.rate_burst)
        self._tokens_at = time.monotonic()
        self._closed = False
        self._quit: c.Quit | None = None
        self._eof = False  # the client sent its last byte; close once all is answered
        self._awaiting = 0  # session commands (PASSWD, STATS) waiting on the store or shards
        self._old_password_proved: str | None = None  # OLDPASSWD's user, for the next PASSWD

    # --- connection life ----------------------------------------------------------------------

    def connectionMade(self) -> None:  # noqa: N802
        self.gw.connections.add(self)
        self.gw.counters["connections"] += 1
        self.transport.registerProducer(self, True)
        if self.gw.settings.idle_timeout > 0:
            self._idle = self.gw.reactor.callLater(self.gw.settings.idle_timeout, self._idle_out)

    def connectionLost(self, reason: Failure = None) -> None:  # noqa: N802
        self._closed = True
        self.gw.connections.discard(self)
        if self.user is not None:
            conns = self.gw.sessions.get(self.user)
            if conns is not None:
                conns.discard(self)
                if not conns:
                    del self.gw.sessions[self.user]
        for user, conns in list(self.gw.watchers.items()):
            conns.discard(self)
            if not conns:
                del self.gw.watchers[user]
        if self._idle is not None and self._idle.active():
            self._idle.cancel()

    def readConnectionLost(self) -> None:  # noqa: N802
        """End of input: answer what came before it (PROTOCOL.md), then close."""
        self._eof = True
        self._after_input()

    def writeConnectionLost(self) -> None:  # noqa: N802
        """The client can no longer read: nothing it sent needs an answer any more."""
        if self.transport is not None:
            self.transport.loseConnection()

    def _after_input(self) -> None:
        """After end of input: refuse a last, unterminated line; close once all is answered."""
        if not self._eof or self._closed or self._paused_login:
            return  # a LOGIN or QUIT in progress calls back here (or closes) when it is done
        if self._buf:
            # A request is a line ended by \n: text cut off by the end of input may be a command
            # cut short (a client that vanished mid-line), so it is refused, never applied.
            tail, self._buf = self._buf, b""
            if not self._discarding and tail.strip(b" \t\r"):
                self._error(None, None, E.BAD_REQUEST,
                            "the input ended inside a line (no \\n after it): not applied")
        if self.inflight == 0 and self._awaiting == 0 and self.transport is not None:
            self.transport.loseConnection()
            self._closed = True

    def _idle_out(self) -> None:
        self._idle = None
        if self.transport is not None:
            self.transport.loseConnection()

    # --- producer: stop reading while the client does not read its replies --------------------

    def pauseProducing(self) -> None:  # noqa: N802
        self._paused_output = True
        self._update_reading()

    def resumeProducing(self) -> None:  # noqa: N802
        self._paused_output = False
        self._update_reading()

    def stopProducing(self) -> None:  # noqa: N802
        pass

    def _update_reading(self) -> None:
        if self.transport is None or self._closed or self._eof:
            return
        if self._paused_output or self._paused_inflight or self._paused_login:
            self.transport.stopReading()
        else:
            self.transport.startReading()

    # --- input --------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.gw.settings.idle_timeout)
        now = now_ms()
        buf = self._buf + data if self._buf else data
        lines = buf.split(b"\n")
        tail = lines.pop()
        for i, raw in enumerate(lines):
            if self._closed:
                return
            if self._paused_login:  # keep the rest until LOGIN has its answer
                self._buf = b"\n".join(lines[i:]) + b"\n" + tail
                return
            if self._discarding:  # the end of an over-long line, already answered
                self._discarding = False
                continue
            self._line(raw, now)
        if self._discarding:
            tail = b""
        elif len(tail) > MAX_LINE_BYTES + 1:
            tail = b""
            self._discarding = True
            self._garbage += 1
            self._error(None, None, E.BAD_REQUEST,
                        f"request line longer than {MAX_LINE_BYTES} bytes")
        self._buf = tail

    def _line(self, raw: bytes, now: int) -> None:
        self.gw.counters["lines"] += 1
        try:
            head = peek_request(raw)
        except ProtocolError as exc:
            self._bad_line(raw, exc, now)
            return
        if head.name in TRADING_NAMES and self.role is not None:
            user = head.user_field()
            if self.role == "operator" or (user == self.user and user is not None):
                # The hot path: the shard parses the line fully (it must anyway, to audit a bad
                # one in the user's order), so the gateway only reads its head.
                self._garbage = 0
                self._forward(head.txn, head.name, user, head.text, now)
                return
        try:
            cmd = parse_request(raw)
        except ProtocolError as exc:
            self._bad_line(raw, exc, now)
            return
        self._garbage = 0
        if cmd.TRADING:
            self._trading(cmd, head.text, now)
        else:
            self._session(cmd, now)

    def _bad_line(self, raw: bytes, exc: ProtocolError, now: int) -> None:
        """A line that failed to parse. Trading-command lines of the connection's own user go
        to the user's shard, to be audited in order; the rest are answered here."""
        if exc.code in _GARBAGE:
            self._garbage += 1
        if exc.command in TRADING_NAMES and self._may_audit(exc.user):
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            self._forward(exc.txn, exc.command or "", exc.user, text, now)
        else:
            self._error(exc.txn, exc.command, exc.code, exc.message)
        if self._garbage >= MAX_GARBAGE_IN_A_ROW:
            security.warning("closing %s after %d bad lines in a row", self.addr, self._garbage)
            self.transport.loseConnection()
            self._closed = True

    def _may_audit(self, user: str | None) -> bool:
        if self.role == "operator":
            return True
        return self.role == "user" and user == self.user

    # --- trading commands ---------------------------------------------------------------------

    def _trading(self, cmd: c.TradingCommand, text: str, now: int) -> None:
        if self.role is None:
            self._error(cmd.txn, cmd.NAME, E.UNAUTHORIZED, "log in first (AUTH or LOGIN)")
            return
        if self.role == "user" and cmd.user != self.user:
            what = "all users' logs" if cmd.user is None else f"user {cmd.user}"
            self._error(cmd.txn, cmd.NAME, E.FORBIDDEN,
                        f"{self.user} may not act for {what}")
            return
        self._forward(cmd.txn, cmd.NAME, cmd.user, text, now)

    def _forward(self, txn: int | None, name: str, user: str | None, text: str,
                 now: int) -> None:
        if not self._within_rate():
            self.gw.counters["busy"] += 1
            self._error(txn, name, E.BUSY, "over this connection's command rate; retry later")
            return
        if txn is None:
            txn = self.gw.txns.next()
            body = text[2:] if text.startswith("$ ") else text
            text = f"[{txn}] {body}"
        else:
            self.gw.txns.seen(txn)
        index = shard_of(user, self.gw.pool.count) if user is not None else 0
        if not self.gw.pool.submit(index, "C", (now, text), self._deliver, txn, name):
            self.gw.counters["busy"] += 1
            self._error(txn, name, E.BUSY, "the shard's queue is full; retry later")
            return
        self.inflight += 1
        if self.inflight >= self.gw.settings.max_in_flight and not self._paused_inflight:
            self._paused_inflight = True
            self._update_reading()

    def _deliver(self, lines: list[bytes], code: str | None) -> None:
        self.inflight -= len(lines)
        if self._paused_inflight and self.inflight <= self.gw.settings.max_in_flight // 2:
            self._paused_inflight = False
            self._update_reading()
        self.write_raw(b"\n".join(lines) + b"\n")
        if self._quit is not None and self.inflight == 0 and self._awaiting == 0:
            self._say_goodbye()
        elif self._eof:
            self._after_input()

    def _say_goodbye(self) -> None:
        quit_cmd, self._quit = self._quit, None
        self._ok(quit_cmd, {"bye": True})
        self.transport.loseConnection()
        self._closed = True

    def _within_rate(self) -> bool:
        rate = self.gw.settings.rate_limit
        if rate <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(float(self.gw.settings.rate_burst),
                           self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    # --- session commands ---------------------------------------------------------------------

    def _session(self, cmd: c.Command, now: int) -> None:
        kind = type(cmd)
        if kind is c.Ping:
            self._ok(cmd, {"pong": now})
        elif kind is c.Help:
            self._help(cmd)
        elif kind is c.Quit:
            # Every earlier request is answered first; nothing more is read meanwhile.
            self._quit = cmd
            self._paused_login = True
            self._update_reading()
            if self.inflight == 0 and self._awaiting == 0:
                self._say_goodbye()
        elif kind is c.Auth:
            self._auth(cmd)
        elif kind is c.Login:
            self._login(cmd, now)
        elif self.role is None:
            self._error(cmd.txn, cmd.NAME, E.UNAUTHORIZED, "log in first (AUTH or LOGIN)")
        elif kind is c.Passwd:
            self._passwd(cmd)
        elif kind is c.OldPasswd:
            self._old_passwd(cmd)
        elif self.role != "operator":
            self._error(cmd.txn, cmd.NAME, E.FORBIDDEN, f"{cmd.NAME} is an operator command")
        elif kind is c.Watch:
            self.gw.watchers.setdefault(cmd.user, set()).add(self)
            self._ok(cmd, {"user": cmd.user, "watching": True})
        elif kind is c.Stats:
            self._stats(cmd)

    def _help(self, cmd: c.Help) -> None:
        if cmd.topic is None:
            self._ok(cmd, {"commands": reference.listing(),
                           "more": "HELP,<command> explains one; docs/protocol.md has them all"})
            return
        found = reference.explain(cmd.topic)
        if found is None:
            self._error(cmd.txn, cmd.NAME, E.BAD_ARGUMENT,
                        f"no command {cmd.topic!r}; HELP lists them")
        else:
            self._ok(cmd, found)

    def _auth(self, cmd: c.Auth) -> None:
        if token_matches(cmd.token, self.gw.operator_token):
            self._set_role("operator", None)
            self._ok(cmd, {"role": "operator"})
            return
        security.warning("failed AUTH from %s", self.addr)
        self._login_failed(cmd, None, "wrong operator token")

    def _set_role(self, role: str, user: str | None) -> None:
        if self.user is not None:
            conns = self.gw.sessions.get(self.user)
            if conns is not None:
                conns.discard(self)
        self.role = role
        self.user = user
        if user is not None:
            self.gw.sessions.setdefault(user, set()).add(self)

    @property
    def _host(self) -> str:
        """The client's host, without its port: the lockout's key (docs/protocol.md)."""
        return str(getattr(self.addr, "host", self.addr))

    def _login_failed(self, cmd: c.Command, user: str | None, why: str) -> None:
        self.gw.counters["login_failures"] += 1
        self._login_failures += 1
        code = E.UNAUTHORIZED
        if user is not None and self.gw.limiter.failed(user, self._host):
            security.warning("user %s locked after repeated failed logins from %s", user,
                             self._host)
        self._error(cmd.txn, cmd.NAME, code, why)
        if self._login_failures >= FAILURES_PER_CONNECTION:
            security.warning("closing %s after %d failed logins", self.addr, self._login_failures)
            self.transport.loseConnection()

    def _locked_out(self, cmd: c.Login | c.OldPasswd) -> bool:
        if not self.gw.limiter.locked(cmd.user, self._host):
            return False
        security.warning("login for locked user %s from %s", cmd.user, self.addr)
        self._error(cmd.txn, cmd.NAME, E.LOCKED, "too many failed logins for this user id from "
                                                 "your address; try again in 15 minutes")
        return True

    def _login(self, cmd: c.Login, now: int) -> None:
        user = cmd.user
        if self._locked_out(cmd):
            return
        self._pause_for_login(True)
        d = self.gw.store.call(_check_login, user, cmd.password)

        def checked(outcome: str) -> None:
            if outcome == "ok":
                self.gw.limiter.succeeded(user, self._host)
                self._set_role("user", user)
                self._ok(cmd, {"user": user, "signed_up": False})
                self._pause_for_login(False)
            elif outcome == "no_password":
                self._sign_up(cmd, now)
            else:
                security.warning("failed LOGIN for %s from %s", user, self.addr)
                self._login_failed(cmd, user, WRONG_LOGIN)
                self._pause_for_login(False)

        d.addCallbacks(checked, self._internal_failure, errbackArgs=(cmd,))

    def _sign_up(self, cmd: c.Login, now: int) -> None:
        """First LOGIN of an unknown id: the shard creates the account, then the password."""
        user = cmd.user

        def opened(lines: list[bytes], code: str | None) -> None:
            import json

            created = bool(json.loads(lines[0]).get("result", {}).get("created"))
            if not created:
                # An account the operator made has no password: answered like a wrong one,
                # so that LOGIN never tells a stranger which ids exist.
                security.warning("failed LOGIN for %s from %s (no password set)", user,
                                 self.addr)
                self._login_failed(cmd, user, WRONG_LOGIN)
                self._pause_for_login(False)
                return
            d = self.gw.store.call(_set_password, user, cmd.password)

            def stored(_: Any) -> None:
                security.info("user %s signed up from %s", user, self.addr)
                self._set_role("user", user)
                self._ok(cmd, {"user": user, "signed_up": True,
                               "note": f"new account {user!r} with 0.00 cash; user ids are "
                                       f"case-sensitive, so log in as exactly {user!r}"})
                self._pause_for_login(False)

            d.addCallbacks(stored, self._internal_failure, errbackArgs=(cmd,))

        index = shard_of(user, self.gw.pool.count)
        if not self.gw.pool.submit(index, "O", (now, user), opened, cmd.txn, "LOGIN"):
            self._error(cmd.txn, cmd.NAME, E.BUSY, "the shard's queue is full; retry later")
            self._pause_for_login(False)

    def _old_passwd(self, cmd: c.OldPasswd) -> None:
        """A user proves their current password; the next command may be their PASSWD."""
        self._old_password_proved = None
        if self.role != "user" or cmd.user != self.user:
            self._error(cmd.txn, cmd.NAME, E.FORBIDDEN, "OLDPASSWD is for a logged-in user's "
                                                        "own password")
            return
        if self._locked_out(cmd):
            return
        self._pause_for_login(True)  # the next line may be the PASSWD it allows

        def checked(outcome: str) -> None:
            if outcome == "ok":
                self.gw.limiter.succeeded(cmd.user, self._host)
                self._old_password_proved = cmd.user
                self._ok(cmd, {"user": cmd.user, "next": "PASSWD,<user>,<new password>"})
            else:
                security.warning("failed OLDPASSWD for %s from %s", cmd.user, self.addr)
                self._login_failed(cmd, cmd.user, "wrong password")
            self._pause_for_login(False)

        self.gw.store.call(_check_login, cmd.user, cmd.password).addCallbacks(
            checked, self._internal_failure, errbackArgs=(cmd,))

    def _passwd(self, cmd: c.Passwd) -> None:
        if self.role != "operator":
            if cmd.user != self.user:
                self._error(cmd.txn, cmd.NAME, E.FORBIDDEN, f"{self.user} may not change the "
                                                             f"password of {cmd.user}")
                return
            if self._old_password_proved != cmd.user:  # one OLDPASSWD allows one PASSWD
                self._error(cmd.txn, cmd.NAME, E.UNAUTHORIZED,
                            "give your current password first: OLDPASSWD,<user>,<current "
                            "password>, then PASSWD,<user>,<new password>")
                return
            self._old_password_proved = None
        answered: Deferred[Any] = Deferred()

        def exists(answers: list[Any], code: str | None) -> None:
            if code is not None:
                self._error(cmd.txn, cmd.NAME, E.INTERNAL, f"{cmd.NAME} failed inside the server")
            elif not answers[0]["exists"]:
                self._error(cmd.txn, cmd.NAME, E.UNKNOWN_USER, f"no account for user {cmd.user}")
            else:
                d = self.gw.store.call(_set_password, cmd.user, cmd.password)
                d.addCallbacks(done, self._internal_failure, errbackArgs=(cmd,))
                d.chainDeferred(answered)
                return
            answered.callback(None)

        def done(_: Any) -> None:
            security.info("password of %s changed by %s", cmd.user, self.role)
            self._ok(cmd, {"user": cmd.user})

        # The shard that owns the user knows whether the account exists.
        index = shard_of(cmd.user, self.gw.pool.count)
        if not self.gw.pool.submit(index, "A", (cmd.user,), exists, cmd.txn, cmd.NAME):
            self._error(cmd.txn, cmd.NAME, E.BUSY, "the shard's queue is full; retry later")
            return
        self._await(answered)

    def _stats(self, cmd: c.Stats) -> None:
        def done(shards: list[dict[str, Any]]) -> None:
            self._ok(cmd, {"gateway": dict(self.gw.counters, open=len(self.gw.connections),
                                           recoveries=len(self.gw.pool.recoveries)),
                           "shards": shards})

        d = self.gw.pool.stats()
        d.addCallbacks(done, self._internal_failure, errbackArgs=(cmd,))
        self._await(d)

    def _pause_for_login(self, paused: bool) -> None:
        self._paused_login = paused
        self._update_reading()
        if not paused and self._buf and b"\n" in self._buf:
            pending, self._buf = self._buf, b""
            self.dataReceived(pending)
        if not self._paused_login:
            self._after_input()

    def _await(self, d: Any) -> None:
        """Count a session command's pending answer, so that end of input waits for it."""
        self._awaiting += 1

        def settled(result: Any) -> Any:
            self._awaiting -= 1
            if self._quit is not None and self.inflight == 0 and self._awaiting == 0:
                self._say_goodbye()
            else:
                self._after_input()
            return result

        d.addBoth(settled)

    def _internal_failure(self, failure: Failure, cmd: c.Command) -> None:
        log.error("%s failed: %s", cmd.NAME, failure.getTraceback())
        self._error(cmd.txn, cmd.NAME, E.INTERNAL, f"{cmd.NAME} failed inside the server")
        self._pause_for_login(False)

    # --- output -------------------------------------------------------------------------------

    def _ok(self, cmd: c.Command, result: dict[str, Any]) -> None:
        self.write_raw(Reply(cmd.txn, cmd.NAME, True, result).to_json().encode() + b"\n")

    def _error(self, txn: int | None, cmd: str | None, code: ErrorCode, message: str) -> None:
        if code in _GARBAGE:
            self.gw.counters["bad_lines"] += 1
        self.write_raw(Reply(txn, cmd, False, None, code, message).to_json().encode() + b"\n")

    def write_raw(self, data: bytes) -> None:
        if not self._closed and self.transport is not None:
            write_now(self.transport, data)


# --- store work, run on the store thread -----------------------------------------------------


def _check_login(store: Directory, user: str, password: str) -> str:
    stored = store.get_password_hash(user)
    if stored is None:
        # As slow as a wrong password, so that timing does not tell which ids have one.
        verify_password(password, _DUMMY_HASH)
        return "no_password"
    return "ok" if verify_password(password, stored) else "wrong"


_DUMMY_HASH = hash_password("a password nobody has")


def _set_password(store: Directory, user: str, password: str) -> None:
    store.set_password_hash(user, hash_password(password))

