"""What an engine call answers besides a reply: a quote it lacks, a DUMPLOG to write, a refusal."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from protocol.errors import ErrorCode
from protocol.quote import PriceQuote
from protocol.replies import Reply


@dataclass(frozen=True, slots=True)
class NeedQuote:
    """The command needs a usable quote for `symbol`, asked for `user`; call again with it."""

    symbol: str
    user: str


@dataclass(frozen=True, slots=True)
class DumpRequest:
    """DUMPLOG was audited; the caller writes the file (all users when `user` is None)."""

    txn: int
    user: str | None
    filename: str


Outcome = Reply | NeedQuote | DumpRequest


class Refused(Exception):
    """A rule said no: the command becomes an error reply and an errorEvent, and changes nothing.

    Raised as `Refused(code, message)`. No __init__ of its own: nearly half a workload's commands
    are refused, and one would cost 1.6 % of the replay's instructions.
    """

    @property
    def code(self) -> ErrorCode:
        return self.args[0]

    @property
    def message(self) -> str:
        return self.args[1]


#: Passed as the quote when none could be had: the command then fails `quote_unavailable`.
UNAVAILABLE = PriceQuote("", 1, 0, "", "")


def quote_unavailable() -> PriceQuote:
    """The marker quote meaning "the quote service could not answer in time"."""
    return UNAVAILABLE


def replies_of(outcomes: Iterable[Outcome]) -> list[Reply]:
    """The replies among outcomes (tests and replays)."""
    return [o for o in outcomes if isinstance(o, Reply)]
