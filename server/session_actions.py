"""What a gateway session asks its connection to do (actions), and the directory's answers.

Frozen dataclasses, performed by `ClientConnection` (server/gateway.py) in the order the
`Session` (server/session.py) returns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from protocol import commands as c


class PasswordCheck(Enum):
    """The directory's answer to a password check."""

    MATCHES = "matches"
    WRONG = "wrong"
    NO_PASSWORD = "no_password"  # no such id, or an account the operator made


@dataclass(frozen=True, slots=True)
class Send:
    """Write this reply line (it ends with a newline) to the client."""

    data: bytes


#: One trading line for a shard: (user, txn, command, line). `user` picks the shard (None:
#: DUMPLOG of all users); `line` starts with its txn, `[txn] `. A plain tuple: one is made for
#: every routed line, and a frozen dataclass costs 8,500 instructions to make (a NamedTuple
#: 3,200, a tuple 380; callgrind, Python 3.11).
RoutedLine = tuple[str | None, int, str, str]


@dataclass(frozen=True, slots=True)
class Route:
    """Hand these trading lines, in order, each to the shard that owns its user; `stamp` is the
    time (ms) they are judged at. Answered through `Session.answered`, or `Session.line_refused`
    for a line whose shard's queue is full. One action gathers the routed lines that follow one
    another (a client pipelines them), so the per-line cost is a tuple."""

    lines: list[RoutedLine]
    stamp: int


@dataclass(frozen=True, slots=True)
class CheckPassword:
    """Ask the directory whether the LOGIN's or OLDPASSWD's password is the user's; answer with
    `Session.password_checked`."""

    command: c.Login | c.OldPasswd


@dataclass(frozen=True, slots=True)
class OpenAccount:
    """Ask the user's shard to create the account of a first LOGIN (sign-up); answer with
    `Session.account_opened`."""

    command: c.Login
    stamp: int


@dataclass(frozen=True, slots=True)
class SetPassword:
    """Store the password of a sign-up or a PASSWD in the directory; answer with
    `Session.password_set`."""

    command: c.Login | c.Passwd


@dataclass(frozen=True, slots=True)
class AskAccountExists:
    """Ask the user's shard whether PASSWD's account exists; answer with
    `Session.account_exists`."""

    command: c.Passwd


@dataclass(frozen=True, slots=True)
class CollectStats:
    """Gather the gateway's and every shard's counters; answer with `Session.stats_collected`."""

    command: c.Stats


@dataclass(frozen=True, slots=True)
class ActFor:
    """The session now acts for `user` (None: for nobody in particular): push their events."""

    user: str | None


@dataclass(frozen=True, slots=True)
class WatchUser:
    """Also push `user`'s events to this connection (operator's WATCH)."""

    user: str


@dataclass(frozen=True, slots=True)
class PauseReading:
    """Stop reading the client. This and `ResumeReading` say that `Session.reading` changed:
    the connection applies its value when it performs either (a write performed before may
    have changed it again)."""


@dataclass(frozen=True, slots=True)
class ResumeReading:
    """Read the client again."""


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection once what was sent before is written."""


Action = (Send | Route | CheckPassword | OpenAccount | SetPassword | AskAccountExists
          | CollectStats | ActFor | WatchUser | PauseReading | ResumeReading | Close)
#: Questions whose answers may come back as `Session.failed`.
Question = CheckPassword | OpenAccount | SetPassword | AskAccountExists | CollectStats

PAUSE_READING = PauseReading()
RESUME_READING = ResumeReading()
CLOSE = Close()
