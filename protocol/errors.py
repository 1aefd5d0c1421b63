"""The one table of error codes, and the typed errors a request line can raise while parsing."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every error code a reply can carry (PROTOCOL.md)."""

    BAD_REQUEST = "bad_request"
    UNKNOWN_COMMAND = "unknown_command"
    BAD_ARGUMENT = "bad_argument"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    LOCKED = "locked"
    STALE_TXN = "stale_txn"
    UNKNOWN_USER = "unknown_user"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INSUFFICIENT_SHARES = "insufficient_shares"
    AMOUNT_TOO_SMALL = "amount_too_small"
    NO_PENDING_BUY = "no_pending_buy"
    NO_PENDING_SELL = "no_pending_sell"
    NO_BUY_AMOUNT = "no_buy_amount"
    NO_SELL_AMOUNT = "no_sell_amount"
    NO_HOLDING = "no_holding"
    QUOTE_UNAVAILABLE = "quote_unavailable"
    BUSY = "busy"
    SHARD_UNAVAILABLE = "shard_unavailable"
    INTERNAL = "internal"

    def __str__(self) -> str:
        return self.value


class ProtocolError(Exception):
    """A request line that cannot become a command.

    Carries what could be read before the failure (txn, command name, user) so the reply and the
    audit errorEvent can name them; fields that failed validation are never carried, only quoted
    in the message.
    """

    code: ErrorCode = ErrorCode.BAD_REQUEST

    def __init__(
        self,
        message: str,
        *,
        txn: int | None = None,
        command: str | None = None,
        user: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.txn = txn
        self.command = command
        self.user = user


class MalformedLine(ProtocolError):
    """The line is not `[txn] COMMAND,args` at all (bad prefix, bad txn, bad UTF-8, empty)."""

    code = ErrorCode.BAD_REQUEST


class LineTooLong(ProtocolError):
    """The line is longer than the protocol's 1024-byte limit."""

    code = ErrorCode.BAD_REQUEST


class UnknownCommand(ProtocolError):
    """The command name is not one the protocol knows."""

    code = ErrorCode.UNKNOWN_COMMAND


class WrongArity(ProtocolError):
    """A known command with the wrong number of arguments."""

    code = ErrorCode.BAD_ARGUMENT


class BadAmount(ProtocolError):
    """An amount or price that is not a positive decimal with at most two places."""

    code = ErrorCode.BAD_ARGUMENT


class BadUserId(ProtocolError):
    """A user id outside `^[A-Za-z0-9_]{1,32}$`."""

    code = ErrorCode.BAD_ARGUMENT


class BadSymbol(ProtocolError):
    """A stock symbol outside `^[A-Z]{1,3}$`."""

    code = ErrorCode.BAD_ARGUMENT


class BadFilename(ProtocolError):
    """A DUMPLOG filename that is empty, too long or holds control characters."""

    code = ErrorCode.BAD_ARGUMENT


class BadPassword(ProtocolError):
    """A password outside 8 to 128 characters."""

    code = ErrorCode.BAD_ARGUMENT


class BadTxn(ProtocolError):
    """A `before_txn` argument that is not a positive integer."""

    code = ErrorCode.BAD_ARGUMENT
