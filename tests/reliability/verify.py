"""What the journals hold after a run, checked against the pure engine fed the same history.

Lost: a transaction record the engine has and the recovered state lacks. Doubled: one the
recovered state has more often than the engine. Negative: an account with negative cash or
holdings. Replies: final replies whose outcome (ok, error code, cash) differs from the engine's
answer to the same command.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from protocol.errors import ProtocolError
from protocol.limits import PENDING_LIFETIME_MS
from protocol.parser import parse_request
from protocol.quote import PriceQuote
from protocol.replies import Reply
from server.shards.account import Account
from server.shards.engine import Engine, NeedQuote, quote_unavailable, summary
from server.shards.recovery import recover_all
from server.store.factory import open_directory, open_journal

#: The `now` of the pure replay: one instant, so nothing expires (the server's run is short).
REPLAY_NOW = 1_764_072_000_000


@dataclass
class Audit:
    """The differences between the store and the engine."""

    users: int = 0
    lost: int = 0
    doubled: int = 0
    negative: int = 0
    state_mismatches: list[str] = field(default_factory=list)
    reply_mismatches: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # lost and doubled records, the first few

    @property
    def clean(self) -> bool:
        return not (self.lost or self.doubled or self.negative or self.state_mismatches
                    or self.reply_mismatches)


#: Txns are idempotency keys per user (PROTOCOL.md): two users may use the same one.
Key = tuple[str | None, int]


def engine_replay(lines: Iterable[tuple[int, str] | tuple[int, str, int]],
                  price_of: dict[str, int], unavailable: set[Key] = frozenset(),
                  end_ms: int | None = None) -> tuple[Engine, dict[Key, Reply]]:
    """The lines `(txn, text[, now_ms])` through the pure engine, quotes at `price_of`; the
    (user, txn) in `unavailable` get no quote (they were answered `quote_unavailable`). Replies
    by (user, txn).

    Without times every line runs at one instant and nothing expires. With the times the server
    received them (as near as the client knows), pending entries expire as on the server, and
    `end_ms` expires what was still pending when the run ended.
    """
    engine = Engine()
    replies: dict[Key, Reply] = {}
    for line in lines:
        txn, text = line[0], line[1]
        now = line[2] if len(line) > 2 else REPLAY_NOW
        try:
            cmd = parse_request(f"[{txn}] {text}")
        except ProtocolError:
            continue  # answered with an error; changes nothing
        outcome = engine.execute(cmd, now)
        if isinstance(outcome, NeedQuote):
            quote = (quote_unavailable() if (cmd.user, txn) in unavailable else
                     PriceQuote(outcome.symbol, price_of[outcome.symbol], now, "k",
                                outcome.user))
            outcome = engine.execute(cmd, now, quote)
        if isinstance(outcome, Reply):
            replies[(cmd.user, txn)] = outcome
    if end_ms is not None:
        engine.expire_due(end_ms)
    return engine, replies


def server_now(reply: Reply, sent_ms: int) -> int:
    """When the server received a command: exact for a new pending entry (its `expires_at`
    minus the 60 s), else the client's send time of the attempt that got the reply."""
    expires_at = (reply.result or {}).get("expires_at") if reply.ok else None
    if reply.cmd in ("BUY", "SELL") and isinstance(expires_at, int):
        return expires_at - PENDING_LIFETIME_MS
    return sent_ms


def _records(acct: Account) -> Counter:
    # (txn, kind, symbol, shares, price, cash_delta): a record without its time
    return Counter((t[0], *t[2:]) for t in acct.transactions)


def _state(acct: Account) -> dict:
    result = summary(acct)
    for key in ("pending_buys", "pending_sells"):
        result[key] = [{k: v for k, v in p.items() if k != "expires_at"} for p in result[key]]
    result["transactions"] = [{k: v for k, v in t.items() if k != "time"}
                              for t in result["transactions"]]
    return result


def audit_store(data_dir: Path, engine: Engine, users: Iterable[str]) -> Audit:
    """Compare every user's account, as a restart recovers it from the journals in `data_dir`,
    with the engine's."""
    audit = Audit()
    directory = open_directory(str(data_dir))
    try:
        shards = directory.partitions() or 0
    finally:
        directory.close()
    recovered = recover_all(open_journal, str(data_dir), shards)
    for user in sorted(users):
        audit.users += 1
        expected = engine.accounts.get(user)
        stored = recovered.get(user)
        if stored is None:
            if expected is not None:
                audit.lost += len(expected.transactions)
                audit.state_mismatches.append(f"{user}: no account in the store")
            continue
        if stored.cash < 0 or any(n < 0 for n in stored.holdings.values()):
            audit.negative += 1
        want = _records(expected) if expected is not None else Counter()
        have = _records(stored)
        audit.lost += sum((want - have).values())
        audit.doubled += sum((have - want).values())
        for name, diff in (("lost", want - have), ("doubled", have - want)):
            audit.examples += [f"{name} {user} {r}" for r in list(diff)[:3]]
        if expected is None or _state(stored) != _state(expected):
            audit.state_mismatches.append(user)
    return audit


def compare_replies(final: dict[Key, Reply], expected: dict[Key, Reply], audit: Audit) -> None:
    """Each final reply, by (user, txn), against the engine's: same ok, error code and cash."""
    for (user, txn), reply in final.items():
        want = expected.get((user, txn))
        if want is None:
            continue
        got_cash = (reply.result or {}).get("cash")
        want_cash = (want.result or {}).get("cash")
        if (reply.ok, reply.code, got_cash) != (want.ok, want.code, want_cash):
            audit.reply_mismatches.append(
                f"{user} [{txn}] {reply.cmd}: got {reply.ok}/{reply.code}/{got_cash}, "
                f"want {want.ok}/{want.code}/{want_cash}")
