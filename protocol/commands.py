"""Typed, validated, immutable commands: one frozen dataclass per request kind.

Every trading command carries the `txn` it arrived with (None when the client sent none; the
server assigns one). `line()` renders the command in canonical form without its txn: that is the
"same command line" which makes a retried txn a replay rather than a `stale_txn`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from protocol.money import format_cents


@dataclass(frozen=True, slots=True)
class Command:
    """Base of every request. `NAME` is the wire name."""

    NAME: ClassVar[str] = ""
    #: Trading commands are the 16 of COMMANDS.md; they are audited and routed to a shard.
    TRADING: ClassVar[bool] = False
    #: State-changing commands take part in txn idempotency; reads are simply run again.
    STATE_CHANGING: ClassVar[bool] = False

    def line(self) -> str:
        """The canonical request line without its txn (commands with arguments override this)."""
        return self.NAME


@dataclass(frozen=True, slots=True)
class TradingCommand(Command):
    """A command of COMMANDS.md, acting for `user` (DUMPLOG's all-users form has user None)."""

    TRADING: ClassVar[bool] = True

    def audit_fields(self) -> tuple[str | None, int | None, str | None]:
        """What the audit log (logfile.xsd) names of the command: its stock symbol, its funds in
        cents (an amount or a price) and its DUMPLOG filename, each None when it has none."""
        return (None, None, None)


# --- trading commands -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Add(TradingCommand):
    NAME: ClassVar[str] = "ADD"
    STATE_CHANGING: ClassVar[bool] = True
    user: str
    amount: int
    txn: int | None = None

    def audit_fields(self) -> tuple[str | None, int | None, str | None]:
        return (None, self.amount, None)

    def line(self) -> str:
        return f"ADD,{self.user},{format_cents(self.amount)}"


@dataclass(frozen=True, slots=True)
class Quote(TradingCommand):
    NAME: ClassVar[str] = "QUOTE"
    user: str
    symbol: str
    txn: int | None = None

    def audit_fields(self) -> tuple[str | None, int | None, str | None]:
        return (self.symbol, None, None)

    def line(self) -> str:
        return f"QUOTE,{self.user},{self.symbol}"


@dataclass(frozen=True, slots=True)
class _SymbolAmount(TradingCommand):
    STATE_CHANGING: ClassVar[bool] = True
    user: str
    symbol: str
    amount: int
    txn: int | None = None

    def audit_fields(self) -> tuple[str | None, int | None, str | None]:
        return (self.symbol, self.amount, None)

    def line(self) -> str:
        return f"{self.NAME},{self.user},{self.symbol},{format_cents(self.amount)}"


@dataclass(frozen=True, slots=True)
class Buy(_SymbolAmount):
    NAME: ClassVar[str] = "BUY"


@dataclass(frozen=True, slots=True)
class Sell(_SymbolAmount):
    NAME: ClassVar[str] = "SELL"


@dataclass(frozen=True, slots=True)
class SetBuyAmount(_SymbolAmount):
    NAME: ClassVar[str] = "SET_BUY_AMOUNT"


@dataclass(frozen=True, slots=True)
class SetSellAmount(_SymbolAmount):
    NAME: ClassVar[str] = "SET_SELL_AMOUNT"


@dataclass(frozen=True, slots=True)
class _SymbolPrice(TradingCommand):
    STATE_CHANGING: ClassVar[bool] = True
    user: str
    symbol: str
    price: int
    txn: int | None = None

    def audit_fields(self) -> tuple[str | None, int | None, str | None]:
        return (self.symbol, self.price, None)

    def line(self) -> str:
        return f"{self.NAME},{self.user},{self.symbol},{format_cents(self.price)}"


@dataclass(frozen=True, slots=True)
class SetBuyTrigger(_SymbolPrice):
    NAME: ClassVar[str] = "SET_BUY_TRIGGER"


@dataclass(frozen=True, slots=True)
class SetSellTrigger(_SymbolPrice):
    NAME: ClassVar[str] = "SET_SELL_TRIGGER"


@dataclass(frozen=True, slots=True)
class _UserOnly(TradingCommand):
    STATE_CHANGING: ClassVar[bool] = True
    user: str
    txn: int | None = None

    def line(self) -> str:
        return f"{self.NAME},{self.user}"


@dataclass(frozen=True, slots=True)
class CommitBuy(_UserOnly):
    NAME: ClassVar[str] = "COMMIT_BUY"


@dataclass(frozen=True, slots=True)
class CancelBuy(_UserOnly):
    NAME: ClassVar[str] = "CANCEL_BUY"


@dataclass(frozen=True, slots=True)
class CommitSell(_UserOnly):
    NAME: ClassVar[str] = "COMMIT_SELL"


@dataclass(frozen=True, slots=True)
class CancelSell(_UserOnly):
    NAME: ClassVar[str] = "CANCEL_SELL"


@dataclass(frozen=True, slots=True)
class _UserSymbol(TradingCommand):
    STATE_CHANGING: ClassVar[bool] = True
    user: str
    symbol: str
    txn: int | None = None

    def audit_fields(self) -> tuple[str | None, int | None, str | None]:
        return (self.symbol, None, None)

    def line(self) -> str:
        return f"{self.NAME},{self.user},{self.symbol}"


@dataclass(frozen=True, slots=True)
class CancelSetBuy(_UserSymbol):
    NAME: ClassVar[str] = "CANCEL_SET_BUY"


@dataclass(frozen=True, slots=True)
class CancelSetSell(_UserSymbol):
    NAME: ClassVar[str] = "CANCEL_SET_SELL"


@dataclass(frozen=True, slots=True)
class DisplaySummary(TradingCommand):
    NAME: ClassVar[str] = "DISPLAY_SUMMARY"
    user: str
    before_txn: int | None = None
    txn: int | None = None

    def line(self) -> str:
        if self.before_txn is None:
            return f"DISPLAY_SUMMARY,{self.user}"
        return f"DISPLAY_SUMMARY,{self.user},{self.before_txn}"


@dataclass(frozen=True, slots=True)
class DumpLog(TradingCommand):
    """`DUMPLOG,filename` (all users, operator only) or `DUMPLOG,user,filename`."""

    NAME: ClassVar[str] = "DUMPLOG"
    filename: str
    user: str | None = None
    txn: int | None = None

    def audit_fields(self) -> tuple[str | None, int | None, str | None]:
        return (None, None, self.filename)

    def line(self) -> str:
        if self.user is None:
            return f"DUMPLOG,{self.filename}"
        return f"DUMPLOG,{self.user},{self.filename}"


# --- session and operator commands ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Auth(Command):
    NAME: ClassVar[str] = "AUTH"
    token: str = field(repr=False)  # secrets stay out of reprs, and so out of logs
    txn: int | None = None

    def line(self) -> str:
        return "AUTH,***"


@dataclass(frozen=True, slots=True)
class Login(Command):
    NAME: ClassVar[str] = "LOGIN"
    user: str
    password: str = field(repr=False)
    txn: int | None = None

    def line(self) -> str:
        return f"LOGIN,{self.user},***"


@dataclass(frozen=True, slots=True)
class Passwd(Command):
    NAME: ClassVar[str] = "PASSWD"
    user: str
    password: str = field(repr=False)
    txn: int | None = None

    def line(self) -> str:
        return f"PASSWD,{self.user},***"


@dataclass(frozen=True, slots=True)
class OldPasswd(Command):
    """A logged-in user proves their current password before changing it with PASSWD. The
    password stays alone after the second comma, so passwords may hold commas (PROTOCOL.md)."""

    NAME: ClassVar[str] = "OLDPASSWD"
    user: str
    password: str = field(repr=False)
    txn: int | None = None

    def line(self) -> str:
        return f"OLDPASSWD,{self.user},***"


@dataclass(frozen=True, slots=True)
class Help(Command):
    """`HELP` lists the commands; `HELP,<command>` explains one (topic upper-cased)."""

    NAME: ClassVar[str] = "HELP"
    topic: str | None = None
    txn: int | None = None

    def line(self) -> str:
        return "HELP" if self.topic is None else f"HELP,{self.topic}"


@dataclass(frozen=True, slots=True)
class Watch(Command):
    NAME: ClassVar[str] = "WATCH"
    user: str
    txn: int | None = None

    def line(self) -> str:
        return f"WATCH,{self.user}"


@dataclass(frozen=True, slots=True)
class Stats(Command):
    NAME: ClassVar[str] = "STATS"
    txn: int | None = None


@dataclass(frozen=True, slots=True)
class Ping(Command):
    NAME: ClassVar[str] = "PING"
    txn: int | None = None


@dataclass(frozen=True, slots=True)
class Quit(Command):
    NAME: ClassVar[str] = "QUIT"
    txn: int | None = None


TRADING_COMMANDS: tuple[type[TradingCommand], ...] = (
    Add, Quote, Buy, CommitBuy, CancelBuy, Sell, CommitSell, CancelSell, SetBuyAmount,
    CancelSetBuy, SetBuyTrigger, SetSellAmount, SetSellTrigger, CancelSetSell, DumpLog,
    DisplaySummary,
)
SESSION_COMMANDS: tuple[type[Command], ...] = (Auth, Login, Passwd, OldPasswd, Watch, Stats,
                                               Help, Ping, Quit)
#: The audit schema's command names, in the schema's order.
TRADING_NAMES: frozenset[str] = frozenset(c.NAME for c in TRADING_COMMANDS)
