"""The protocol reference as data: the one source of the HELP command and of docs/protocol.md.

HELP answers from these tables, and a test checks that docs/protocol.md shows them verbatim
(`markdown_commands`, `markdown_errors`), so the server, the docs and this file cannot drift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from protocol.errors import ErrorCode as E
from protocol.limits import (
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    PENDING_LIFETIME_MS,
    RECENT_REPLIES,
)
from protocol.money import MAX_AMOUNT_TEXT

#: How long a pending BUY or SELL lives, in the seconds the texts speak of.
_PENDING_S = PENDING_LIFETIME_MS // 1000

#: Who may send a command.
ANYONE = "anyone, also before logging in"
ACCOUNT = "the user themself (LOGIN) or the operator (AUTH)"
OPERATOR = "the operator (AUTH)"


@dataclass(frozen=True, slots=True)
class CommandHelp:
    """One command: how to write it, who may send it, what it does, the errors it has of its own
    (every command may also fail with the codes of `COMMON_ERRORS`)."""

    name: str
    usage: str
    who: str
    summary: str
    errors: tuple[E, ...] = ()


COMMANDS: tuple[CommandHelp, ...] = (
    CommandHelp("ADD", "ADD,<user>,<amount>", ACCOUNT,
                "adds the amount to the user's cash; the operator's first ADD creates the "
                "account (with no password: see PASSWD)."),
    CommandHelp("QUOTE", "QUOTE,<user>,<SYM>", ACCOUNT,
                "the current price of SYM (price, quote_time, cryptokey, age_ms); changes "
                "nothing.", (E.QUOTE_UNAVAILABLE,)),
    CommandHelp("BUY", "BUY,<user>,<SYM>,<amount>", ACCOUNT,
                "reserves amount // price whole shares at the quoted price; their cost leaves "
                f"cash now. COMMIT_BUY or CANCEL_BUY within {_PENDING_S} s, or it expires and the "
                "cost "
                "returns.",
                (E.INSUFFICIENT_FUNDS, E.AMOUNT_TOO_SMALL, E.QUOTE_UNAVAILABLE)),
    CommandHelp("COMMIT_BUY", "COMMIT_BUY,<user>", ACCOUNT,
                "the newest pending BUY's shares join the holdings.", (E.NO_PENDING_BUY,)),
    CommandHelp("CANCEL_BUY", "CANCEL_BUY,<user>", ACCOUNT,
                "the newest pending BUY's cost returns to cash.", (E.NO_PENDING_BUY,)),
    CommandHelp("SELL", "SELL,<user>,<SYM>,<amount>", ACCOUNT,
                "reserves amount // price of the user's shares at the quoted price. "
                f"COMMIT_SELL or CANCEL_SELL within {_PENDING_S} s, or it expires and the shares "
                "return.",
                (E.INSUFFICIENT_SHARES, E.AMOUNT_TOO_SMALL, E.QUOTE_UNAVAILABLE)),
    CommandHelp("COMMIT_SELL", "COMMIT_SELL,<user>", ACCOUNT,
                "the newest pending SELL's proceeds join cash.", (E.NO_PENDING_SELL,)),
    CommandHelp("CANCEL_SELL", "CANCEL_SELL,<user>", ACCOUNT,
                "the newest pending SELL's shares return to the holdings.", (E.NO_PENDING_SELL,)),
    CommandHelp("SET_BUY_AMOUNT", "SET_BUY_AMOUNT,<user>,<SYM>,<amount>", ACCOUNT,
                "reserves the amount from cash for an automatic buy of SYM (replacing an earlier "
                "reservation).", (E.INSUFFICIENT_FUNDS, E.AMOUNT_TOO_SMALL)),
    CommandHelp("SET_BUY_TRIGGER", "SET_BUY_TRIGGER,<user>,<SYM>,<price>", ACCOUNT,
                "arms the automatic buy: it fires when SYM's price is at or below the price.",
                (E.NO_BUY_AMOUNT, E.AMOUNT_TOO_SMALL)),
    CommandHelp("CANCEL_SET_BUY", "CANCEL_SET_BUY,<user>,<SYM>", ACCOUNT,
                "removes the automatic buy of SYM; its reservation returns to cash.",
                (E.NO_BUY_AMOUNT,)),
    CommandHelp("SET_SELL_AMOUNT", "SET_SELL_AMOUNT,<user>,<SYM>,<amount>", ACCOUNT,
                "the amount an automatic sell of SYM should raise.",
                (E.NO_HOLDING, E.AMOUNT_TOO_SMALL, E.INSUFFICIENT_SHARES)),
    CommandHelp("SET_SELL_TRIGGER", "SET_SELL_TRIGGER,<user>,<SYM>,<price>", ACCOUNT,
                "reserves amount // price shares and arms the automatic sell: it fires when "
                "SYM's price is at or above the price.",
                (E.NO_SELL_AMOUNT, E.AMOUNT_TOO_SMALL, E.INSUFFICIENT_SHARES)),
    CommandHelp("CANCEL_SET_SELL", "CANCEL_SET_SELL,<user>,<SYM>", ACCOUNT,
                "removes the automatic sell of SYM; reserved shares return.",
                (E.NO_SELL_AMOUNT,)),
    CommandHelp("DISPLAY_SUMMARY", "DISPLAY_SUMMARY,<user>[,<before_txn>]", ACCOUNT,
                "cash, holdings, pending orders, triggers and the 20 newest transactions "
                "(older than before_txn when given)."),
    CommandHelp("DUMPLOG", "DUMPLOG,[<user>,]<filename>", ACCOUNT + "; all users: the operator",
                "writes the audit log as XML into the server's dump directory under a safe base "
                "name of <filename> (a/x.xml and b/x.xml both write x.xml, replacing it); `path` "
                "is the file written. DUMPLOG,<user>,- returns the XML in the reply (up to "
                "4 MB)."),
    CommandHelp("AUTH", "AUTH,<operator token>", ANYONE,
                "this connection becomes the operator: it may act for any user. The token is in "
                "<data dir>/operator.token.", (E.UNAUTHORIZED,)),
    CommandHelp("LOGIN", "LOGIN,<user>,<password>", ANYONE,
                "this connection acts for <user> only. The first LOGIN of a new id signs it up "
                "(0 cash). Ids are case-sensitive; the password is everything after the second "
                f"comma, {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters.",
                (E.UNAUTHORIZED, E.LOCKED)),
    CommandHelp("OLDPASSWD", "OLDPASSWD,<user>,<current password>", "the user themself",
                "proves the current password; one PASSWD on this connection may then follow: "
                "PASSWD,<user>,<new password>.", (E.UNAUTHORIZED, E.LOCKED)),
    CommandHelp("PASSWD", "PASSWD,<user>,<new password>",
                "the operator for anyone; the user themself after OLDPASSWD",
                "sets the password; this is how the operator lets someone log in to an account "
                "the operator created with ADD. A user's PASSWD needs an OLDPASSWD first (one "
                "each).", (E.UNKNOWN_USER, E.UNAUTHORIZED)),
    CommandHelp("WATCH", "WATCH,<user>", OPERATOR,
                "this connection also receives the user's pushed events."),
    CommandHelp("STATS", "STATS", OPERATOR,
                "counters of the gateway and of every shard."),
    CommandHelp("HELP", "HELP[,<command>]", ANYONE,
                "lists the commands, or explains one."),
    CommandHelp("PING", "PING", ANYONE, "answers pong with the server's time."),
    CommandHelp("QUIT", "QUIT", ANYONE,
                "answers every earlier command, says bye, closes. End of input is the same."),
)

BY_NAME: dict[str, CommandHelp] = {h.name: h for h in COMMANDS}

#: Every error code and what a client should do about it.
ERRORS: tuple[tuple[E, str], ...] = (
    (E.BAD_REQUEST, "the line is not `[txn] COMMAND,args`: bad txn, bad UTF-8, empty, or longer "
                    "than 1024 bytes."),
    (E.UNKNOWN_COMMAND, "no such command; HELP lists them."),
    (E.BAD_ARGUMENT, "an argument is wrong; the message says which and why (amounts: positive, "
                     f"at most two decimals, at most {MAX_AMOUNT_TEXT})."),
    (E.UNAUTHORIZED, "log in first, or the login failed (the message never says whether the "
                     "id exists)."),
    (E.FORBIDDEN, "acting for another user, or an operator command as a user."),
    (E.LOCKED, "too many failed logins for this id from this address; wait 15 minutes."),
    (E.STALE_TXN, "an explicit txn not above the user's highest, and not a retry of one of the "
                  f"user's last {RECENT_REPLIES} commands."),
    (E.UNKNOWN_USER, "no account with this id (ids are case-sensitive)."),
    (E.INSUFFICIENT_FUNDS, "not enough cash."),
    (E.INSUFFICIENT_SHARES, "not enough free shares."),
    (E.AMOUNT_TOO_SMALL, "the amount buys or sells no whole share at the price."),
    (E.NO_PENDING_BUY, f"no pending BUY within the last {_PENDING_S} s."),
    (E.NO_PENDING_SELL, f"no pending SELL within the last {_PENDING_S} s."),
    (E.NO_BUY_AMOUNT, "no SET_BUY_AMOUNT for this symbol."),
    (E.NO_SELL_AMOUNT, "no SET_SELL_AMOUNT for this symbol."),
    (E.NO_HOLDING, "the user owns no shares of this symbol."),
    (E.QUOTE_UNAVAILABLE, "the quote server did not answer in time; retry."),
    (E.BUSY, "nothing was applied; retry the same line later."),
    (E.SHARD_UNAVAILABLE, "the user's shard runs on another host and cannot be reached now; "
                          "nothing was applied; retry later."),
    (E.INTERNAL, "the outcome is unknown; retry with the same txn and the reply says which."),
)

#: Codes any command may fail with, besides its own.
COMMON_ERRORS: tuple[E, ...] = (E.BAD_ARGUMENT, E.UNAUTHORIZED, E.FORBIDDEN, E.BUSY, E.INTERNAL)


def listing() -> list[dict[str, str]]:
    """HELP's answer: every command's usage and who may send it."""
    return [{"command": h.name, "usage": h.usage, "who": h.who} for h in COMMANDS]


def explain(name: str) -> dict[str, object] | None:
    """HELP,<command>'s answer, or None for a name the protocol does not know."""
    h = BY_NAME.get(name.upper())
    if h is None:
        return None
    return {"command": h.name, "usage": h.usage, "who": h.who, "summary": h.summary,
            "errors": [str(code) for code in h.errors]}


def markdown_commands() -> str:
    """The command table of docs/protocol.md."""
    rows = ["| command | who | what it does | its own errors |", "|---|---|---|---|"]
    for h in COMMANDS:
        errors = ", ".join(f"`{code}`" for code in h.errors)
        rows.append(f"| `{h.usage}` | {_code_spans(h.who)} | {_code_spans(h.summary)} | "
                    f"{errors} |")
    return "\n".join(rows)


def _code_spans(text: str) -> str:
    """Markdown would take `<user>` for an HTML tag and hide it: show it as code instead."""
    return re.sub(r"(?<!`)(<[^<>]+>)(?!`)", r"`\1`", text)


def markdown_errors() -> str:
    """The error-code table of docs/protocol.md."""
    rows = ["| code | meaning |", "|---|---|"]
    rows += [f"| `{code}` | {meaning} |" for code, meaning in ERRORS]
    return "\n".join(rows)
