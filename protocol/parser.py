"""Parse one request line into a typed command, or raise the typed error that says what is wrong.

Accepted forms (PROTOCOL.md): `[txn] CMD,args`, `$ CMD,args` (a workload line; no txn), and plain
`CMD,args`; a trailing `\\r`, trailing spaces and spaces around fields are ignored, except in
passwords, which are everything after the second comma, untrimmed. Command names are
case-insensitive ASCII; arguments are case-sensitive.

Speed: a line in the canonical form of a trading command (what clients and workloads send) is read
by one regular expression and built without the dataclass __init__; anything else, errors
included, goes through the general parser, which gives the same answer for every line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import fields
from functools import partial
from typing import NamedTuple

from protocol import commands as c
from protocol.errors import (
    BadAmount,
    BadFilename,
    BadPassword,
    BadSymbol,
    BadTxn,
    BadUserId,
    LineTooLong,
    MalformedLine,
    ProtocolError,
    UnknownCommand,
    WrongArity,
)
from protocol.limits import (
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    SYMBOL,
    SYMBOL_MAX_LENGTH,
    SYMBOL_PATTERN,
    USER_ID,
    USER_ID_PATTERN,
)
from protocol.money import amount_problem, cents_of, parse_cents

MAX_LINE_BYTES = 1024
MAX_FILENAME = 255
_DIGITS = re.compile(r"[0-9]{1,18}")
_FIELD_SPACE = " \t"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_request(line: bytes | str) -> c.Command:
    """Parse one request line (with or without its line ending) into a command."""
    if len(line) <= MAX_LINE_BYTES:
        text = line if type(line) is str else line.decode("ascii") if line.isascii() else ""
        m = _canonical(text)
        if m is not None:
            txn_s, name, user, symbol, whole, frac = m.groups()
            form = _FORMS.get(name) or _FORMS.get(name.upper())
            if form is not None:
                has_symbol, has_amount, make = form
                if (symbol is not None) is has_symbol and (whole is not None) is has_amount:
                    txn = None if txn_s is None else int(txn_s)
                    amount = None if whole is None else cents_of(whole, frac)
                    # zero amounts and txns are errors: the general parser words them
                    if amount != 0 and txn != 0:
                        return make(user, symbol, amount, txn)
    return _parse_general(line)


def _parse_general(line: bytes | str) -> c.Command:
    head = peek_request(line)
    try:
        return _BUILDERS[head.name](head.args, head.txn)
    except ProtocolError as exc:
        exc.txn = head.txn
        exc.command = head.name
        raise


class RequestHead(NamedTuple):
    """What a router needs of a request line, read without validating its arguments."""

    txn: int | None
    name: str  # upper-cased, one the protocol knows
    args: str | None  # everything after the first comma (None: no comma at all)
    text: str  # the decoded line without its line ending

    def user_field(self) -> str | None:
        """The user the line acts for, as written (None for the all-users DUMPLOG)."""
        if self.args is None:
            return None
        first, sep, _ = self.args.partition(",")
        if self.name == "DUMPLOG" and not sep:
            return None
        return first.strip(_FIELD_SPACE)


def peek_request(line: bytes | str) -> RequestHead:
    """Check a line's size, encoding, txn prefix and command name; leave its arguments unread.

    Raises the typed errors parse_request raises for those parts; `parse_request` is this plus
    the command's own argument checks.
    """
    if isinstance(line, bytes):
        if line.endswith(b"\n"):
            line = line[:-1]
        if len(line) > MAX_LINE_BYTES + 1 or (
            len(line) == MAX_LINE_BYTES + 1 and not line.endswith(b"\r")
        ):
            raise LineTooLong(f"request line longer than {MAX_LINE_BYTES} bytes")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedLine("request line is not valid UTF-8") from None
    else:
        text = line
        if text.endswith("\n"):
            text = text[:-1]
        # Bytes, not characters: a non-ASCII character takes up to 4 bytes.
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_LINE_BYTES + text.endswith("\r"):
            raise LineTooLong(f"request line longer than {MAX_LINE_BYTES} bytes")
    if text.endswith("\r"):
        text = text[:-1]
    txn, body = _split_prefix(text)
    name, sep, rest = body.partition(",")
    name = name.strip(_FIELD_SPACE)
    if not name:
        raise MalformedLine("empty request line", txn=txn)
    if not name.isascii():
        raise UnknownCommand(f"unknown command {_quote(name)}", txn=txn)
    name = name.upper()
    if name not in _BUILDERS:
        raise UnknownCommand(f"unknown command {_quote(name)}", txn=txn)
    return RequestHead(txn, name, rest if sep else None, text)


def _split_prefix(text: str) -> tuple[int | None, str]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise MalformedLine("unterminated [txn] prefix")
        digits = text[1:end].strip(_FIELD_SPACE)
        if not _DIGITS.fullmatch(digits) or int(digits) <= 0:
            raise MalformedLine(f"txn must be a positive integer, got {_quote(digits)}")
        return int(digits), text[end + 1 :]
    if text.startswith("$ "):
        return None, text[2:]
    return None, text


def _quote(value: str, limit: int = 40) -> str:
    """Quote a rejected field for an error message: repr escapes control characters."""
    if len(value) > limit:
        value = value[:limit] + "..."
    return repr(value)


# --- field validators ---------------------------------------------------------------------------


def _user(text: str) -> str:
    value = text.strip(_FIELD_SPACE)
    if USER_ID.fullmatch(value) is None:
        raise BadUserId(f"user id must match {USER_ID_PATTERN}, got {_quote(value)}")
    return value


def _symbol(text: str, user: str) -> str:
    value = text.strip(_FIELD_SPACE)
    if SYMBOL.fullmatch(value) is None:
        raise BadSymbol(f"stock symbol must be 1-{SYMBOL_MAX_LENGTH} capital letters, "
                        f"got {_quote(value)}", user=user)
    return value


def _amount(text: str, user: str | None, what: str = "amount") -> int:
    value = text.strip(_FIELD_SPACE)
    cents = parse_cents(value)
    if cents is None:
        raise BadAmount(f"{what} {amount_problem(value)}, got {_quote(value)}", user=user)
    if cents <= 0:
        raise BadAmount(f"{what} must be greater than zero, got {_quote(value)}", user=user)
    return cents


def _fields(name: str, rest: str | None, count: int, usage: str) -> list[str]:
    fields = [] if rest is None else rest.split(",")
    if len(fields) != count:
        raise WrongArity(f"{name} takes {usage} ({count} argument{'s' * (count != 1)}), "
                         f"got {len(fields)}")
    return fields


def _password(text: str, user: str) -> str:
    if not PASSWORD_MIN_LENGTH <= len(text) <= PASSWORD_MAX_LENGTH:
        raise BadPassword(f"password must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} "
                          "characters", user=user)
    return text


def _filename(text: str, user: str | None) -> str:
    value = text.strip(_FIELD_SPACE)
    if not value or len(value) > MAX_FILENAME or _CONTROL.search(value):
        raise BadFilename(f"bad DUMPLOG filename {_quote(value)}", user=user)
    return value


# --- one builder per command (a shape's builder given its class by partial) ------------------

Builder = Callable[[str | None, int | None], c.Command]


def _user_symbol_amount(cls: type, rest: str | None, txn: int | None,
                        what: str = "amount") -> c.Command:
    user_f, sym_f, amount_f = _fields(cls.NAME, rest, 3, f"user, symbol, {what}")
    user = _user(user_f)
    return cls(user, _symbol(sym_f, user), _amount(amount_f, user, what), txn)


def _user_symbol(cls: type, rest: str | None, txn: int | None) -> c.Command:
    user_f, sym_f = _fields(cls.NAME, rest, 2, "user, symbol")
    user = _user(user_f)
    return cls(user, _symbol(sym_f, user), txn)


def _user_only(cls: type, rest: str | None, txn: int | None) -> c.Command:
    (user_f,) = _fields(cls.NAME, rest, 1, "user")
    return cls(_user(user_f), txn)


def _no_args(cls: type, rest: str | None, txn: int | None) -> c.Command:
    if rest is not None and rest.strip(_FIELD_SPACE):
        raise WrongArity(f"{cls.NAME} takes no arguments")
    return cls(txn)


def _add(rest: str | None, txn: int | None) -> c.Command:
    user_f, amount_f = _fields("ADD", rest, 2, "user, amount")
    user = _user(user_f)
    return c.Add(user, _amount(amount_f, user), txn)


def _display_summary(rest: str | None, txn: int | None) -> c.Command:
    fields = [] if rest is None else rest.split(",")
    if len(fields) not in (1, 2):
        raise WrongArity(f"DISPLAY_SUMMARY takes user [, before_txn], got {len(fields)} arguments")
    user = _user(fields[0])
    before = None
    if len(fields) == 2:
        digits = fields[1].strip(_FIELD_SPACE)
        if not _DIGITS.fullmatch(digits) or int(digits) <= 0:
            raise BadTxn(f"before_txn must be a positive integer, got {_quote(digits)}", user=user)
        before = int(digits)
    return c.DisplaySummary(user, before, txn)


def _dumplog(rest: str | None, txn: int | None) -> c.Command:
    fields = [] if rest is None else rest.split(",")
    if len(fields) == 1:
        return c.DumpLog(_filename(fields[0], None), None, txn)
    if len(fields) == 2:
        user = _user(fields[0])
        return c.DumpLog(_filename(fields[1], user), user, txn)
    raise WrongArity(f"DUMPLOG takes [user,] filename, got {len(fields)} arguments")


def _credentials(cls: type, rest: str | None, txn: int | None) -> c.Command:
    if rest is None or "," not in rest:
        raise WrongArity(f"{cls.NAME} takes user, password")
    user_f, password = rest.split(",", 1)
    user = _user(user_f)
    return cls(user, _password(password, user), txn)


def _help(rest: str | None, txn: int | None) -> c.Command:
    topic = None if rest is None else rest.strip(_FIELD_SPACE)
    if not topic:
        return c.Help(None, txn)
    if "," in topic or not topic.isascii():
        raise WrongArity("HELP takes at most one argument, a command name")
    return c.Help(topic.upper(), txn)


def _auth(rest: str | None, txn: int | None) -> c.Command:
    (token,) = _fields("AUTH", rest, 1, "token")
    token = token.strip(_FIELD_SPACE)
    if not token or len(token) > 256:
        raise MalformedLine("AUTH takes the operator token")
    return c.Auth(token, txn)


_BUILDERS: dict[str, Builder] = {
    "ADD": _add,
    "QUOTE": partial(_user_symbol, c.Quote),
    "BUY": partial(_user_symbol_amount, c.Buy),
    "SELL": partial(_user_symbol_amount, c.Sell),
    "SET_BUY_AMOUNT": partial(_user_symbol_amount, c.SetBuyAmount),
    "SET_SELL_AMOUNT": partial(_user_symbol_amount, c.SetSellAmount),
    "SET_BUY_TRIGGER": partial(_user_symbol_amount, c.SetBuyTrigger, what="price"),
    "SET_SELL_TRIGGER": partial(_user_symbol_amount, c.SetSellTrigger, what="price"),
    "COMMIT_BUY": partial(_user_only, c.CommitBuy),
    "CANCEL_BUY": partial(_user_only, c.CancelBuy),
    "COMMIT_SELL": partial(_user_only, c.CommitSell),
    "CANCEL_SELL": partial(_user_only, c.CancelSell),
    "CANCEL_SET_BUY": partial(_user_symbol, c.CancelSetBuy),
    "CANCEL_SET_SELL": partial(_user_symbol, c.CancelSetSell),
    "DISPLAY_SUMMARY": _display_summary,
    "DUMPLOG": _dumplog,
    "AUTH": _auth,
    "LOGIN": partial(_credentials, c.Login),
    "PASSWD": partial(_credentials, c.Passwd),
    "OLDPASSWD": partial(_credentials, c.OldPasswd),
    "HELP": _help,
    "WATCH": partial(_user_only, c.Watch),
    "STATS": partial(_no_args, c.Stats),
    "PING": partial(_no_args, c.Ping),
    "QUIT": partial(_no_args, c.Quit),
}


# --- the fast path for canonical trading lines -----------------------------------------------

#: `[txn] NAME,user[,SYMBOL][,amount]` with nothing around the fields but trailing spaces and the
#: line ending; groups: txn, name, user, symbol, dollars, cents. Possessive quantifiers (`++`,
#: `?+`) skip backtracking that could never succeed: each part is followed by characters it
#: cannot hold.
_canonical = re.compile(
    rf"(?:\[([0-9]{{1,18}}+)\] ?+|\$ )?+([A-Za-z_]++),({USER_ID_PATTERN}+)"
    rf"(?:,({SYMBOL_PATTERN}+))?+(?:,([0-9]{{1,10}}+)(?:\.([0-9]{{1,2}}+))?+)?+ *+\r?+\n?+"
).fullmatch

Maker = Callable[[str, str | None, int | None, int | None], c.Command]


def _maker(cls: type, fields: tuple[str, ...]) -> Maker:
    """Build `cls` from (user, symbol, amount, txn), setting its slots directly: a frozen
    dataclass __init__ makes one object.__setattr__ call per field. Measured (callgrind,
    PYTHONHASHSEED=0): 4,400 instructions a BUY against 7,400 by __init__, 4 % of
    `daytrade replay` on final_2019's first 60k lines; hence one maker per field shape."""
    new = object.__new__
    setters = [getattr(cls, name).__set__ for name in fields]
    if fields == ("user", "symbol", "amount", "txn") or fields == ("user", "symbol", "price",
                                                                    "txn"):
        s_user, s_symbol, s_amount, s_txn = setters

        def make(user: str, symbol: str | None, amount: int | None, txn: int | None) -> c.Command:
            cmd = new(cls)
            s_user(cmd, user)
            s_symbol(cmd, symbol)
            s_amount(cmd, amount)
            s_txn(cmd, txn)
            return cmd
    elif fields == ("user", "amount", "txn"):
        s_user, s_amount, s_txn = setters

        def make(user: str, symbol: str | None, amount: int | None, txn: int | None) -> c.Command:
            cmd = new(cls)
            s_user(cmd, user)
            s_amount(cmd, amount)
            s_txn(cmd, txn)
            return cmd
    elif fields == ("user", "symbol", "txn"):
        s_user, s_symbol, s_txn = setters

        def make(user: str, symbol: str | None, amount: int | None, txn: int | None) -> c.Command:
            cmd = new(cls)
            s_user(cmd, user)
            s_symbol(cmd, symbol)
            s_txn(cmd, txn)
            return cmd
    elif fields == ("user", "txn"):
        s_user, s_txn = setters

        def make(user: str, symbol: str | None, amount: int | None, txn: int | None) -> c.Command:
            cmd = new(cls)
            s_user(cmd, user)
            s_txn(cmd, txn)
            return cmd
    elif fields == ("user", "before_txn", "txn"):
        s_user, s_before, s_txn = setters

        def make(user: str, symbol: str | None, amount: int | None, txn: int | None) -> c.Command:
            cmd = new(cls)
            s_user(cmd, user)
            s_before(cmd, None)
            s_txn(cmd, txn)
            return cmd
    else:  # pragma: no cover - every form below is one of the above
        raise ValueError(f"no fast maker for {cls.__name__}{fields}")
    return make


def _form(cls: type, symbol: bool, amount: bool) -> tuple[bool, bool, Maker]:
    """Whether the canonical line of `cls` has a symbol and an amount, and how to build it."""
    return symbol, amount, _maker(cls, tuple(f.name for f in fields(cls)))


_FORMS: dict[str, tuple[bool, bool, Maker]] = {
    "ADD": _form(c.Add, False, True),
    "QUOTE": _form(c.Quote, True, False),
    "BUY": _form(c.Buy, True, True),
    "SELL": _form(c.Sell, True, True),
    "SET_BUY_AMOUNT": _form(c.SetBuyAmount, True, True),
    "SET_SELL_AMOUNT": _form(c.SetSellAmount, True, True),
    "SET_BUY_TRIGGER": _form(c.SetBuyTrigger, True, True),
    "SET_SELL_TRIGGER": _form(c.SetSellTrigger, True, True),
    "COMMIT_BUY": _form(c.CommitBuy, False, False),
    "CANCEL_BUY": _form(c.CancelBuy, False, False),
    "COMMIT_SELL": _form(c.CommitSell, False, False),
    "CANCEL_SELL": _form(c.CancelSell, False, False),
    "CANCEL_SET_BUY": _form(c.CancelSetBuy, True, False),
    "CANCEL_SET_SELL": _form(c.CancelSetSell, True, False),
    "DISPLAY_SUMMARY": _form(c.DisplaySummary, False, False),
}
