"""The inputs of a shard's engine calls, as the plain data a journal record holds, and their replay.

Everything an engine call's result depends on is in its input: the command line with the time the
gateway stamped it and the quote it was given, a sign-up, an expiry with the time it ran at, a
trigger firing with its quote and its txns. A shard applies each input through `apply_input` as it
journals it, and recovery applies the journaled inputs through the same function, so the state
after a restart is the state that was acknowledged.

    ["C", now, line, quote]   a trading command line (quote: None, UNAVAILABLE or quote data)
    ["O", now, user]          sign-up: an empty account
    ["X", now, user]          the user's pending entries due at `now` released
    ["F", now, quote, txns]   the triggers `quote` crosses fired under `txns`
"""

from __future__ import annotations

from typing import Any

from protocol.errors import ProtocolError
from protocol.parser import parse_request
from protocol.quote import PriceQuote
from server.shards.engine import Engine, Outcome, quote_unavailable

COMMAND, OPEN, EXPIRE, FIRE = "C", "O", "X", "F"
#: A command that no quote could be had for.
UNAVAILABLE = "U"


def quote_data(quote: PriceQuote | None) -> Any:
    """A quote as journal data."""
    if quote is None:
        return None
    if quote is quote_unavailable():
        return UNAVAILABLE
    return [quote.symbol, quote.price, quote.quote_time, quote.cryptokey, quote.user, quote.fresh]


def quote_of(data: Any) -> PriceQuote | None:
    """The quote that `quote_data` made `data` of."""
    if data is None:
        return None
    if data == UNAVAILABLE:
        return quote_unavailable()
    return PriceQuote(*data)


def run_line(engine: Engine, line: str, now: int, quote: PriceQuote | None) -> Outcome | None:
    """Execute a trading command line (or audit its rejection); None for a line the engine has
    nothing to do with (a session command, or a rejected line without a txn)."""
    try:
        cmd = parse_request(line)
    except ProtocolError as exc:
        if exc.txn is None:
            return None
        return engine.reject(exc.command, exc.user, exc.txn, now, exc.code, exc.message)
    if not cmd.TRADING:
        return None
    return engine.execute(cmd, now, quote)


def fire(engine: Engine, now: int, quote: PriceQuote, txns: list[int]) -> list[str]:
    """Fire what `quote` crosses under `txns`; a fresh quote that fired nothing is audited under
    the first txn. Returns the owners of the triggers that fired."""
    owners = engine.fire_triggers(quote, now, txns)
    if not owners and quote.fresh and txns:
        engine.audit_quote_hit(quote, now, txns[0])
    return owners


def apply_input(engine: Engine, item: list[Any]) -> None:
    """Apply one journaled input (recovery)."""
    kind = item[0]
    if kind == COMMAND:
        run_line(engine, item[2], item[1], quote_of(item[3]))
    elif kind == EXPIRE:
        engine.expire_user(item[2], item[1])
    elif kind == OPEN:
        engine.open_account(item[2], item[1])
    elif kind == FIRE:
        fire(engine, item[1], quote_of(item[2]), item[3])
    else:
        raise ValueError(f"unknown journal input {kind!r}")

