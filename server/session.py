"""One client's session with the gateway, without I/O: bytes and answers in, actions out.

Like h11's `Connection`: `ClientConnection` (server/gateway.py) feeds a `Session` what the socket,
the shards and the directory said, and performs the actions (server/session_actions.py) it gets
back, in order. The session
splits lines, keeps the login state, applies the access rule, flow control and the rate limit,
gives txn-less lines a txn and renders every reply the gateway itself writes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from protocol import commands as c
from protocol import reference
from protocol.commands import TRADING_NAMES
from protocol.errors import ErrorCode, ProtocolError
from protocol.parser import MAX_LINE_BYTES, parse_request, peek_request
from protocol.replies import Reply
from server.auth import FAILURES_PER_CONNECTION, LoginLimiter, token_matches
from server.session_actions import (
    CLOSE,
    PAUSE_READING,
    RESUME_READING,
    ActFor,
    Action,
    AskAccountExists,
    CheckPassword,
    CollectStats,
    OpenAccount,
    PasswordCheck,
    Question,
    Route,
    RoutedLine,
    Send,
    SetPassword,
    WatchUser,
)
from server.txns import TxnAllocator

security = logging.getLogger("daytrade.security")

E = ErrorCode
_GARBAGE = (E.BAD_REQUEST, E.UNKNOWN_COMMAND)
MAX_GARBAGE_IN_A_ROW = 10
#: Every failed LOGIN says this, whatever failed, so that it never tells whether an id exists.
WRONG_LOGIN = "wrong user id or password"
LOG_IN_FIRST = "log in first (AUTH or LOGIN)"
QUEUE_FULL = "the shard's queue is full; retry later"


@dataclass
class GatewaySettings:
    """Tunables of the gateway (defaults follow PROTOCOL.md)."""

    max_in_flight: int = 2_000  # per connection, before reading pauses
    idle_timeout: float = 15 * 60.0
    rate_limit: float = 0.0  # commands/s per connection; 0: unlimited
    rate_burst: int = 1_000


#: Who a logged-in session acts as. Plain strings: the access rule runs for every routed line,
#: and looking up an Enum member (`Role.OPERATOR`) costs ~1,000 instructions on Python 3.11,
#: a module constant ~85 (callgrind).
Role = Literal["operator", "user"]
OPERATOR: Role = "operator"
USER: Role = "user"


def may_act_for(role: Role | None, own_user: str | None, user: str | None) -> bool:
    """The access rule: the operator acts for anyone (`user` None: for all users at once); a
    logged-in user only for themself; nobody before logging in."""
    return role == OPERATOR or (role == USER and user is not None and user == own_user)


class Session:
    """One client's session: fed bytes, end of input and answers; returns actions to perform.

    Every input method returns the actions it caused, in the order they must be performed.
    Times are milliseconds given by the caller, so the session reads no clock.
    """

    def __init__(self, peer: Any, operator_token: str, txns: TxnAllocator,
                 limiter: LoginLimiter, counters: dict[str, int],
                 settings: GatewaySettings) -> None:
        self.peer = peer  # the client's address, as logged
        #: The client's host without its port: the lockout's key (docs/protocol.md).
        self.host = str(getattr(peer, "host", peer))
        self._operator_token = operator_token
        self._txns = txns
        self._limiter = limiter
        self._counters = counters
        self._max_in_flight = settings.max_in_flight
        self._rate = settings.rate_limit
        self._burst = float(settings.rate_burst)
        self.role: Role | None = None
        self.user: str | None = None
        self.inflight = 0  # routed lines not yet answered
        self._out: list[Action] = []
        self._routing: list[RoutedLine] | None = None  # the lines of the last Route in _out
        self._buf = b""
        self._discarding = False  # inside an over-long line, already answered
        self._garbage = 0  # bad lines in a row
        self._login_failures = 0
        #: Lines wait: a LOGIN or OLDPASSWD waits for its answer, or QUIT for every answer.
        self._held = False
        self._quit: c.Quit | None = None  # QUIT waits for every earlier answer
        self._eof = False  # the client sent its last byte; close once all is answered
        self._awaiting = 0  # PASSWD and STATS waiting on the shards or the directory
        self._old_password_proved: str | None = None  # OLDPASSWD's user, for the next PASSWD
        self._output_paused = False
        self._inflight_paused = False
        self.reading = True  # whether the client is read: see _update_reading
        self._tokens = self._burst
        self._tokens_at: int | None = None
        self._unsettled = False  # a refusal's consequences wait for `settle`
        self.closed = False

    # --- inputs -------------------------------------------------------------------------------

    def receive(self, data: bytes, now: int) -> list[Action]:
        """Bytes from the client, received at `now`."""
        self._take(data, now)
        return self._flush()

    def input_ended(self) -> list[Action]:
        """End of input (a half-close): a QUIT without its reply. Every line already received
        is answered, then the connection closes (PROTOCOL.md)."""
        self._eof = True
        self._after_input()
        return self._flush()

    def answered(self, count: int) -> list[Action]:
        """The shards answered `count` routed lines (their replies are written before the
        actions returned here are performed)."""
        self.inflight -= count
        if self._inflight_paused and self.inflight <= self._max_in_flight // 2:
            self._inflight_paused = False
            self._update_reading()
        self._settle()
        return self._flush()

    def line_refused(self, line: RoutedLine) -> list[Action]:
        """The shard's queue was full: `line` was not sent; it is answered `busy` here.

        More actions may follow the refused line in the list being performed, so what the
        refusal settles (QUIT's goodbye, the close after end of input) waits for `settle`,
        which the connection calls once that list is performed."""
        self._counters["busy"] += 1
        self.inflight -= 1
        if self._inflight_paused and self.inflight < self._max_in_flight:
            self._inflight_paused = False  # paused for a line that never went out
            self._update_reading()
        self._error(line[1], line[2], E.BUSY, QUEUE_FULL)
        self._unsettled = True
        return self._flush()

    def shard_busy(self, question: OpenAccount | AskAccountExists, now: int) -> list[Action]:
        """The shard's queue was full: `question` was not sent; it is answered `busy` here."""
        cmd = question.command
        self._error(cmd.txn, cmd.NAME, E.BUSY, QUEUE_FULL)
        if isinstance(question, OpenAccount):
            self._check_done(now)  # nothing follows a sign-up's question in its list
        else:
            self._awaiting -= 1
            self._unsettled = True  # as for a refused line
        return self._flush()

    def settle(self) -> list[Action]:
        """Called once the list in which a question was refused is performed."""
        if self._unsettled:
            self._unsettled = False
            self._settle()
        return self._flush()

    def password_checked(self, question: CheckPassword, outcome: PasswordCheck,
                         now: int) -> list[Action]:
        """The directory's answer to `question`."""
        cmd = question.command
        if type(cmd) is c.OldPasswd:
            if outcome is PasswordCheck.MATCHES:
                self._limiter.succeeded(cmd.user, self.host)
                self._old_password_proved = cmd.user
                self._ok(cmd, {"user": cmd.user, "next": "PASSWD,<user>,<new password>"})
            else:
                security.warning("failed OLDPASSWD for %s from %s", cmd.user, self.peer)
                self._login_failed(cmd, cmd.user, "wrong password")
            self._check_done(now)
        elif outcome is PasswordCheck.MATCHES:
            self._limiter.succeeded(cmd.user, self.host)
            self._act_for(USER, cmd.user)
            self._ok(cmd, {"user": cmd.user, "signed_up": False})
            self._check_done(now)
        elif outcome is PasswordCheck.NO_PASSWORD:
            # Maybe a new id (sign-up): its shard creates the account, then the password is set.
            assert type(cmd) is c.Login
            self._emit(OpenAccount(cmd, now))
        else:
            security.warning("failed LOGIN for %s from %s", cmd.user, self.peer)
            self._login_failed(cmd, cmd.user, WRONG_LOGIN)
            self._check_done(now)
        return self._flush()

    def account_opened(self, question: OpenAccount, created: bool, now: int) -> list[Action]:
        """The shard's answer to a sign-up: True if it created the account just now."""
        cmd = question.command
        if created:
            self._emit(SetPassword(cmd))
        else:
            # An account the operator made has no password: answered like a wrong one, so
            # that LOGIN never tells a stranger which ids exist.
            security.warning("failed LOGIN for %s from %s (no password set)", cmd.user,
                             self.peer)
            self._login_failed(cmd, cmd.user, WRONG_LOGIN)
            self._check_done(now)
        return self._flush()

    def password_set(self, question: SetPassword, now: int) -> list[Action]:
        """The directory stored the password of a sign-up or a PASSWD."""
        cmd = question.command
        if type(cmd) is c.Login:
            security.info("user %s signed up from %s", cmd.user, self.peer)
            self._act_for(USER, cmd.user)
            self._ok(cmd, {"user": cmd.user, "signed_up": True,
                           "note": f"new account {cmd.user!r} with 0.00 cash; user ids are "
                                   f"case-sensitive, so log in as exactly {cmd.user!r}"})
            self._check_done(now)
        else:
            security.info("password of %s changed by %s", cmd.user, self.role)
            self._ok(cmd, {"user": cmd.user})
            self._awaiting -= 1
            self._settle()
        return self._flush()

    def account_exists(self, question: AskAccountExists, exists: bool | None) -> list[Action]:
        """The shard's answer to PASSWD's question (None: the shard died meanwhile)."""
        cmd = question.command
        if exists:
            self._emit(SetPassword(cmd))
            return self._flush()
        if exists is None:
            self._error(cmd.txn, cmd.NAME, E.INTERNAL, f"{cmd.NAME} failed inside the server")
        else:
            self._error(cmd.txn, cmd.NAME, E.UNKNOWN_USER, f"no account for user {cmd.user}")
        self._awaiting -= 1
        self._settle()
        return self._flush()

    def stats_collected(self, question: CollectStats, result: dict[str, Any]) -> list[Action]:
        """STATS's counters, gathered."""
        self._ok(question.command, result)
        self._awaiting -= 1
        self._settle()
        return self._flush()

    def failed(self, question: Question, now: int) -> list[Action]:
        """`question` failed inside the server (the connection logs why): `internal`."""
        cmd = question.command
        self._error(cmd.txn, cmd.NAME, E.INTERNAL, f"{cmd.NAME} failed inside the server")
        if type(cmd) in (c.Login, c.OldPasswd):
            self._check_done(now)
        else:
            self._awaiting -= 1
            self._settle()
        return self._flush()

    def output_paused(self) -> list[Action]:
        """The client does not read its replies fast enough: stop reading it."""
        self._output_paused = True
        self._update_reading()
        return self._flush()

    def output_resumed(self) -> list[Action]:
        self._output_paused = False
        self._update_reading()
        return self._flush()

    # --- lines --------------------------------------------------------------------------------

    def _take(self, data: bytes, now: int) -> None:
        buf = self._buf + data if self._buf else data
        lines = buf.split(b"\n")
        tail = lines.pop()
        for i, raw in enumerate(lines):
            if self.closed:
                return
            if self._held:
                # Lines after a LOGIN wait for its answer; lines after QUIT are never read.
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
        self._counters["lines"] += 1
        try:
            head = peek_request(raw)
        except ProtocolError as exc:
            self._bad_line(raw, exc, now)
            return
        if head.name in TRADING_NAMES and self.role is not None:
            user = head.user_field()
            if may_act_for(self.role, self.user, user):
                # The hot path: the shard parses the line fully (it must anyway, to audit a bad
                # one in the user's order), so the gateway only reads its head.
                self._garbage = 0
                self._route(head.txn, head.name, user, head.text, now)
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
        """A line that failed to parse. Trading-command lines the session may act for go to
        the user's shard, to be audited in order; the rest are answered here."""
        if exc.code in _GARBAGE:
            self._garbage += 1
        if exc.command in TRADING_NAMES and may_act_for(self.role, self.user, exc.user):
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            self._route(exc.txn, exc.command or "", exc.user, text, now)
        else:
            self._error(exc.txn, exc.command, exc.code, exc.message)
        if self._garbage >= MAX_GARBAGE_IN_A_ROW:
            security.warning("closing %s after %d bad lines in a row", self.peer, self._garbage)
            self._close()

    def _trading(self, cmd: c.TradingCommand, text: str, now: int) -> None:
        if self.role is None:
            self._error(cmd.txn, cmd.NAME, E.UNAUTHORIZED, LOG_IN_FIRST)
        elif not may_act_for(self.role, self.user, cmd.user):
            what = "all users' logs" if cmd.user is None else f"user {cmd.user}"
            self._error(cmd.txn, cmd.NAME, E.FORBIDDEN, f"{self.user} may not act for {what}")
        else:
            self._route(cmd.txn, cmd.NAME, cmd.user, text, now)

    def _route(self, txn: int | None, name: str, user: str | None, text: str,
               now: int) -> None:
        if self._rate > 0 and not self._within_rate(now):
            self._counters["busy"] += 1
            self._error(txn, name, E.BUSY, "over this connection's command rate; retry later")
            return
        if txn is None:
            txn = self._txns.next()
            body = text[2:] if text.startswith("$ ") else text
            text = f"[{txn}] {body}"
        else:
            self._txns.seen(txn)
        if self._routing is None:
            self._routing = []
            self._out.append(Route(self._routing, now))
        self._routing.append((user, txn, name, text))
        self.inflight += 1
        if self.inflight >= self._max_in_flight and not self._inflight_paused:
            self._inflight_paused = True
            self._update_reading()

    def _within_rate(self, now: int) -> bool:
        """A token bucket: `rate_limit` commands a second, `rate_burst` at once."""
        if self._tokens_at is not None and now > self._tokens_at:
            self._tokens = min(self._burst,
                               self._tokens + (now - self._tokens_at) / 1000 * self._rate)
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
            self._held = True
            self._update_reading()
            self._settle()
        elif kind is c.Auth:
            self._auth(cmd)
        elif kind is c.Login:
            self._login(cmd)
        elif self.role is None:
            self._error(cmd.txn, cmd.NAME, E.UNAUTHORIZED, LOG_IN_FIRST)
        elif kind is c.Passwd:
            self._passwd(cmd)
        elif kind is c.OldPasswd:
            self._old_passwd(cmd)
        elif self.role is not OPERATOR:
            self._error(cmd.txn, cmd.NAME, E.FORBIDDEN, f"{cmd.NAME} is an operator command")
        elif kind is c.Watch:
            self._emit(WatchUser(cmd.user))
            self._ok(cmd, {"user": cmd.user, "watching": True})
        elif kind is c.Stats:
            self._awaiting += 1
            self._emit(CollectStats(cmd))

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
        if token_matches(cmd.token, self._operator_token):
            self._act_for(OPERATOR, None)
            self._ok(cmd, {"role": "operator"})
            return
        security.warning("failed AUTH from %s", self.peer)
        self._login_failed(cmd, None, "wrong operator token")

    def _login(self, cmd: c.Login) -> None:
        if self._locked_out(cmd):
            return
        self._check(cmd)

    def _old_passwd(self, cmd: c.OldPasswd) -> None:
        """A user proves their current password; the next command may be their PASSWD."""
        self._old_password_proved = None
        if self.role is not USER or not may_act_for(self.role, self.user, cmd.user):
            self._error(cmd.txn, cmd.NAME, E.FORBIDDEN, "OLDPASSWD is for a logged-in user's "
                                                        "own password")
            return
        if self._locked_out(cmd):
            return
        self._check(cmd)  # the next line may be the PASSWD it allows

    def _passwd(self, cmd: c.Passwd) -> None:
        if self.role is not OPERATOR:
            if not may_act_for(self.role, self.user, cmd.user):
                self._error(cmd.txn, cmd.NAME, E.FORBIDDEN, f"{self.user} may not change the "
                                                             f"password of {cmd.user}")
                return
            if self._old_password_proved != cmd.user:  # one OLDPASSWD allows one PASSWD
                self._error(cmd.txn, cmd.NAME, E.UNAUTHORIZED,
                            "give your current password first: OLDPASSWD,<user>,<current "
                            "password>, then PASSWD,<user>,<new password>")
                return
            self._old_password_proved = None
        # The shard that owns the user knows whether the account exists.
        self._awaiting += 1
        self._emit(AskAccountExists(cmd))

    def _check(self, cmd: c.Login | c.OldPasswd) -> None:
        """Ask the directory; the lines after this one wait for its answer."""
        self._held = True
        self._update_reading()
        self._emit(CheckPassword(cmd))

    def _check_done(self, now: int) -> None:
        """The LOGIN or OLDPASSWD is answered: the lines that waited for it go on."""
        self._held = False
        self._update_reading()
        if self._buf and b"\n" in self._buf:
            pending, self._buf = self._buf, b""
            self._take(pending, now)
        if not self._held:
            self._after_input()

    def _locked_out(self, cmd: c.Login | c.OldPasswd) -> bool:
        if not self._limiter.locked(cmd.user, self.host):
            return False
        security.warning("login for locked user %s from %s", cmd.user, self.peer)
        self._error(cmd.txn, cmd.NAME, E.LOCKED, "too many failed logins for this user id from "
                                                 "your address; try again in 15 minutes")
        return True

    def _login_failed(self, cmd: c.Command, user: str | None, why: str) -> None:
        self._counters["login_failures"] += 1
        self._login_failures += 1
        if user is not None and self._limiter.failed(user, self.host):
            security.warning("user %s locked after repeated failed logins from %s", user,
                             self.host)
        self._error(cmd.txn, cmd.NAME, E.UNAUTHORIZED, why)
        if self._login_failures >= FAILURES_PER_CONNECTION:
            security.warning("closing %s after %d failed logins", self.peer,
                             self._login_failures)
            self._close()

    def _act_for(self, role: Role, user: str | None) -> None:
        self.role = role
        self.user = user
        self._emit(ActFor(user))

    # --- closing and reading ------------------------------------------------------------------

    def _settle(self) -> None:
        """After an answer: say goodbye to a QUIT, or close after end of input, once nothing
        is outstanding."""
        if self.closed:
            return
        if self._quit is not None and self.inflight == 0 and self._awaiting == 0:
            quit_cmd, self._quit = self._quit, None
            self._ok(quit_cmd, {"bye": True})
            self._close()
        else:
            self._after_input()

    def _after_input(self) -> None:
        """After end of input: refuse a last, unterminated line; close once all is answered."""
        if not self._eof or self.closed or self._held:
            return  # a LOGIN or QUIT in progress comes back here (or closes) when it is done
        if self._buf:
            # A request is a line ended by \n: text cut off by the end of input may be a command
            # cut short (a client that vanished mid-line), so it is refused, never applied.
            tail, self._buf = self._buf, b""
            if not self._discarding and tail.strip(b" \t\r"):
                self._error(None, None, E.BAD_REQUEST,
                            "the input ended inside a line (no \\n after it): not applied")
        if self.inflight == 0 and self._awaiting == 0:
            self._close()

    def _close(self) -> None:
        self.closed = True
        self._emit(CLOSE)

    def _update_reading(self) -> None:
        if self.closed or self._eof:
            return
        wanted = not (self._output_paused or self._inflight_paused or self._held)
        if wanted != self.reading:
            self.reading = wanted
            self._emit(RESUME_READING if wanted else PAUSE_READING)

    # --- output -------------------------------------------------------------------------------

    def _emit(self, action: Action) -> None:
        self._routing = None  # the next routed line starts a Route of its own, after this
        self._out.append(action)

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        self._routing = None
        return out

    def _ok(self, cmd: c.Command, result: dict[str, Any]) -> None:
        self._emit(Send(Reply(cmd.txn, cmd.NAME, True, result).to_json().encode() + b"\n"))

    def _error(self, txn: int | None, cmd: str | None, code: ErrorCode, message: str) -> None:
        if code in _GARBAGE:
            self._counters["bad_lines"] += 1
        self._emit(
            Send(Reply(txn, cmd, False, None, code, message).to_json().encode() + b"\n"))
