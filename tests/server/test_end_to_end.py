"""The whole system on 127.0.0.1 against the pure engine (tests/support/oracle.py): a workload
replayed through the server, trigger firings at controlled prices and pending BUY/SELL expiry
agree with the engine in replies, pushed events, DISPLAY_SUMMARY and the DUMPLOG audit log."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bench.workload import read_workload, shipped
from protocol.client import DaytradeClient
from protocol.limits import PENDING_LIFETIME_MS
from server.audit.validate import validate_log
from tests.server.conftest import workload_prices
from tests.server.journal_helpers import Wire, dumplog, operator, user_of_shard
from tests.support.oracle import (
    T0,
    Oracle,
    comparable,
    comparable_reply,
    oracle_audit,
    server_audit,
)

pytestmark = pytest.mark.e2e


def engine_replay(name: str, prices: dict[str, int]) -> Oracle:
    """The same workload through the pure engine, every quote at the fixed price."""
    oracle = Oracle(prices)
    for item in read_workload(shipped(name)):
        if item.command != "DUMPLOG":
            oracle.run(item.txn, item.text, T0)
    return oracle


async def replay_through_server(host: str, port: int, token: str, name: str):
    client = await DaytradeClient.connect(host, port, timeout=60)
    try:
        assert (await client.auth(token)).ok
        items = list(read_workload(shipped(name)))
        trading = [i for i in items if i.command != "DUMPLOG"]
        dumps = [i for i in items if i.command == "DUMPLOG"]
        futures = [client.send(i.text, txn=i.txn) for i in trading]
        replies = await asyncio.gather(*futures)
        dump_replies = [await client.send(i.text, txn=i.txn) for i in dumps]
        users = sorted({i.user for i in trading if i.user})
        summaries = {}
        for user in users:
            reply = await client.send(f"DISPLAY_SUMMARY,{user}")
            assert reply.ok, reply
            summaries[user] = reply.result
        return trading, replies, dump_replies, summaries
    finally:
        await client.close()


def test_ten_user_workload_through_the_server_matches_the_pure_engine(system_factory):
    prices = workload_prices("10user.txt")
    # No trigger sweep during the run, so the server and the pure replay see the same history.
    system = system_factory(prices=prices, sweep_interval=3600)
    trading, replies, dump_replies, summaries = asyncio.run(
        replay_through_server(system.host, system.port, system.token, "10user.txt"))

    assert len(replies) == len(trading)
    for item, reply in zip(trading, replies):
        assert reply.txn == item.txn and reply.cmd == item.command, (item, reply)
    assert len(dump_replies) == 1 and dump_replies[0].ok, dump_replies
    dump_path = dump_replies[0].result["path"]
    assert dump_path.startswith(str(system.data_dir))
    assert validate_log(dump_path) == []

    oracle = engine_replay("10user.txt", prices)
    for user, result in summaries.items():
        assert comparable(result) == comparable(oracle.summary(user)), user


# --- timers: trigger firings and pending expiry -------------------------------------------------

#: The quote simulator's prices (cents) in the timer comparisons; fixed, so a trigger crosses or
#: not from the moment it is armed, whenever the sweep gets to it.
TIMER_PRICES = {"TBA": 2_000, "TSB": 1_000, "TNO": 5_000, "TCX": 3_000}


def timer_users() -> dict[str, str]:
    """The scenario's users by role, on both shards of two."""
    return {name: user_of_shard(shard, 2, name)
            for name, shard in (("ann", 0), ("bob", 1), ("cat", 0), ("dan", 1), ("eve", 0))}


def run_on_both(op: Wire, oracle: Oracle, lines: list[str], first_txn: int, now: int) -> int:
    """Each line through the server (explicit txns from `first_txn` on) and through the oracle
    at `now`, their replies compared; the next free txn."""
    for txn, line in enumerate(lines, first_txn):
        reply = op.ask(f"[{txn}] {line}")
        expected = oracle.run(txn, line, now)
        assert expected is not None, line
        assert comparable_reply(reply) == comparable_reply(expected), line
    return first_txn + len(lines)


def pushed(op: Wire, name: str, count: int, timeout: float) -> list[dict[str, Any]]:
    """The `name` events pushed to `op` once there are `count` of them; AssertionError naming
    those that came if fewer came within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = [event for _, event in op.events if event["event"] == name]
        if len(got) >= count:
            return got
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{len(got)} of {count} {name} events within {timeout} s: {got}")
        reply = op.poll(min(left, 0.2))
        assert reply is None, f"a reply nobody asked for: {reply}"


def assert_firings_agree(op: Wire, oracle: Oracle, crossing: set[tuple[str, str, str]],
                         timeout: float) -> None:
    """The sweep fires exactly the `crossing` (user, side, symbol) triggers, pushed to `op`
    within `timeout` seconds, and nothing more in five more sweeps; the oracle firing them
    under the txns the gateway gave them pushes the same events."""
    fired = pushed(op, "trigger_fired", len(crossing), timeout)
    assert {(e["user"], e["side"], e["symbol"]) for e in fired} == crossing
    oracle.fire_as_the_server_did(fired, T0)
    assert sorted(fired, key=lambda e: e["txn"]) == sorted(oracle.pushes, key=lambda e: e["txn"])
    assert op.poll(1.0) is None  # five more sweeps, 0.2 s apart
    assert len([e for _, e in op.events if e["event"] == "trigger_fired"]) == len(crossing)


def assert_summaries_and_audit_agree(system, op: Wire, oracle: Oracle, users: list[str]) -> None:
    """The DUMPLOG audit log holds the oracle's events, and every user's DISPLAY_SUMMARY is
    the oracle's (the dump first: DISPLAY_SUMMARY is audited too)."""
    path = dumplog(system, op, "oracle.xml")
    assert validate_log(path) == []
    assert server_audit(path) == oracle_audit(oracle)
    for user in users:
        reply = op.ask(f"DISPLAY_SUMMARY,{user}")
        assert reply["ok"], reply
        assert comparable(reply["result"]) == comparable(oracle.summary(user)), user


def test_trigger_firings_through_the_server_match_the_pure_engine(system_factory):
    """Buy and sell triggers armed at fixed prices, some crossing and some not, one cancelled:
    the sweep fires exactly the crossing ones, and the pushed trigger_fired events, the audit
    log and every DISPLAY_SUMMARY are those of the engine firing the same triggers under the
    txns the gateway gave the firings. A crossing trigger is armed by its user's last line, so
    when the sweep fires it does not change what the user's other lines saw."""
    u = timer_users()
    ann, bob, cat, dan, eve = (u[k] for k in ("ann", "bob", "cat", "dan", "eve"))
    assert ann < eve  # both cross on TBA: ann is armed first and comes first in a sweep too
    lines = [
        f"ADD,{ann},1000.00", f"SET_BUY_AMOUNT,{ann},TNO,80.00",
        f"SET_BUY_TRIGGER,{ann},TNO,40.00",  # TNO at 50.00 stays above: never fires
        f"SET_BUY_AMOUNT,{ann},TBA,150.00", f"SET_BUY_TRIGGER,{ann},TBA,21.00",  # fires
        f"ADD,{bob},1000.00", f"BUY,{bob},TSB,300.00", f"COMMIT_BUY,{bob}",
        f"SET_BUY_AMOUNT,{bob},TCX,50.00", f"SET_BUY_TRIGGER,{bob},TCX,29.00",
        f"CANCEL_SET_BUY,{bob},TCX",  # released before anything could fire it
        f"SET_SELL_AMOUNT,{bob},TSB,120.00", f"SET_SELL_TRIGGER,{bob},TSB,9.50",  # fires
        f"ADD,{cat},500.00", f"BUY,{cat},TSB,100.00", f"COMMIT_BUY,{cat}",
        f"SET_SELL_AMOUNT,{cat},TSB,50.00",
        f"SET_SELL_TRIGGER,{cat},TSB,11.00",  # TSB at 10.00 stays below: never fires
        f"SET_BUY_AMOUNT,{cat},TNO,100.00", f"SET_BUY_TRIGGER,{cat},TNO,55.00",  # fires
        f"ADD,{dan},200.00", f"SET_SELL_TRIGGER,{dan},TNO,10.00",  # no amount set: refused
        f"SET_BUY_AMOUNT,{dan},TBA,100.00", f"SET_BUY_TRIGGER,{dan},TBA,19.00",  # never
        f"BUY,{dan},TCX,60.00", f"COMMIT_BUY,{dan}", f"SET_SELL_AMOUNT,{dan},TCX,30.00",
        f"CANCEL_SET_SELL,{dan},TCX",
        f"ADD,{eve},300.00", f"SET_BUY_AMOUNT,{eve},TBA,60.00",
        f"SET_BUY_TRIGGER,{eve},TBA,25.00",  # fires, after ann's on the same symbol
    ]
    system = system_factory(prices=TIMER_PRICES, sweep_interval=0.2)
    oracle = Oracle(TIMER_PRICES)
    with operator(system) as op:
        for user in u.values():
            assert op.ask(f"WATCH,{user}")["ok"]
        run_on_both(op, oracle, lines, 1, T0)
        crossing = oracle.crossings(T0)
        assert crossing == {(ann, "buy", "TBA"), (eve, "buy", "TBA"), (bob, "sell", "TSB"),
                            (cat, "buy", "TNO")}  # the scenario is what it says
        assert_firings_agree(op, oracle, crossing, timeout=30)
        assert_summaries_and_audit_agree(system, op, oracle, list(u.values()))


@pytest.mark.soak
def test_pending_expiry_through_the_server_matches_the_pure_engine(system_factory):
    """(soak: it waits the real 60 s) BUYs and SELLs left pending, beside committed and
    cancelled ones, are released 60 s after their stamp: the pushed pending_expired events are
    the engine's expiry's, and so are the replies of what the users do afterwards (a commit
    finds nothing; the shares and cash released can be used again), the audit log and every
    DISPLAY_SUMMARY."""
    u = timer_users()
    ann, bob, cat = u["ann"], u["bob"], u["cat"]
    before = [
        f"ADD,{ann},1000.00", f"BUY,{ann},TBA,100.00",  # left pending: expires
        f"BUY,{ann},TSB,50.00", f"COMMIT_BUY,{ann}",  # commits the newest, TSB
        f"BUY,{ann},TNO,100.00", f"CANCEL_BUY,{ann}",
        f"ADD,{bob},500.00", f"BUY,{bob},TSB,200.00", f"COMMIT_BUY,{bob}",
        f"SELL,{bob},TSB,100.00",  # left pending: expires, its 10 shares come back
        f"SELL,{bob},TSB,50.00", f"COMMIT_SELL,{bob}",
        f"ADD,{cat},100.00", f"BUY,{cat},TBA,40.00",  # left pending: expires
    ]
    after = [
        f"COMMIT_BUY,{cat}", f"COMMIT_SELL,{bob}",  # nothing left to commit
        f"SELL,{bob},TSB,150.00", f"COMMIT_SELL,{bob}",  # the released shares sell again
        f"BUY,{ann},TBA,120.00", f"COMMIT_BUY,{ann}",
    ]
    system = system_factory(prices=TIMER_PRICES)
    oracle = Oracle(TIMER_PRICES)
    with operator(system) as op:
        for user in (ann, bob, cat):
            assert op.ask(f"WATCH,{user}")["ok"]
        txn = run_on_both(op, oracle, before, 1, T0)
        oracle.expire(T0 + PENDING_LIFETIME_MS)
        assert len(oracle.pushes) == 3  # the scenario is what it says
        expired = pushed(op, "pending_expired", len(oracle.pushes),
                         timeout=PENDING_LIFETIME_MS / 1000 + 60)
        by_entry = sorted(expired, key=lambda e: (e["user"], e["txn"]))
        assert by_entry == sorted(oracle.pushes, key=lambda e: (e["user"], e["txn"]))
        run_on_both(op, oracle, after, txn, T0 + PENDING_LIFETIME_MS + 1_000)
        assert_summaries_and_audit_agree(system, op, oracle, [ann, bob, cat])


@pytest.mark.soak
def test_a_price_moved_in_the_prices_file_fires_what_it_crosses_like_the_pure_engine(
        system_factory):
    """(soak: a swept quote serves up to 60 s) Triggers armed where the prices do not cross
    them stay armed; once the quote simulator's prices file moves the prices, the sweep fires
    the triggers the new prices cross as soon as its cached quotes are renewed, and nothing
    else: the pushed trigger_fired events, the audit log and every DISPLAY_SUMMARY are the
    engine's at the new prices."""
    u = timer_users()
    ann, bob, cat = u["ann"], u["bob"], u["cat"]
    prices = {"TMV": 4_000, "TMW": 2_000}
    lines = [
        f"ADD,{ann},1000.00", f"SET_BUY_AMOUNT,{ann},TMV,200.00",
        f"SET_BUY_TRIGGER,{ann},TMV,35.00",  # crosses once TMV falls to 34.00
        f"ADD,{bob},500.00", f"BUY,{bob},TMW,100.00", f"COMMIT_BUY,{bob}",
        f"SET_SELL_AMOUNT,{bob},TMW,100.00",
        f"SET_SELL_TRIGGER,{bob},TMW,22.00",  # crosses once TMW rises to 23.00
        f"ADD,{cat},300.00", f"SET_BUY_AMOUNT,{cat},TMV,100.00",
        f"SET_BUY_TRIGGER,{cat},TMV,30.00",  # stays above at 34.00: never
    ]
    system = system_factory(prices=prices, sweep_interval=0.2)
    oracle = Oracle(prices)  # shares the dict: it sees the move too
    with operator(system) as op:
        for user in (ann, bob, cat):
            assert op.ask(f"WATCH,{user}")["ok"]
        run_on_both(op, oracle, lines, 1, T0)
        assert oracle.crossings(T0) == set()
        assert op.poll(1.0) is None and op.events == []  # five sweeps at the old prices
        prices.update({"TMV": 3_400, "TMW": 2_300})
        system.set_prices(prices)
        crossing = oracle.crossings(T0)
        assert crossing == {(ann, "buy", "TMV"), (bob, "sell", "TMW")}  # what it says
        assert_firings_agree(op, oracle, crossing, timeout=PENDING_LIFETIME_MS / 1000 + 60)
        assert_summaries_and_audit_agree(system, op, oracle, [ann, bob, cat])
