"""Recovery: replaying a shard's journal gives the state and the audit events of the live run."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.shards.engine import Engine, summary
from server.shards.inputs import apply_input
from server.shards.recovery import recover
from server.store import codec
from server.store.sqlite_journal import SqliteJournal
from tests.shards.shard_harness import Shard

USERS = ("u0", "u1", "u2")
SYMBOLS = ("ABC", "XY")


def _line(draw: st.DrawFn, txn: int) -> str:
    user = draw(st.sampled_from(USERS))
    sym = draw(st.sampled_from(SYMBOLS))
    amount = f"{draw(st.integers(1, 400))}.{draw(st.integers(0, 99)):02d}"
    body = draw(st.sampled_from([
        f"ADD,{user},{amount}", f"BUY,{user},{sym},{amount}", f"SELL,{user},{sym},{amount}",
        f"COMMIT_BUY,{user}", f"CANCEL_BUY,{user}", f"COMMIT_SELL,{user}",
        f"CANCEL_SELL,{user}", f"SET_BUY_AMOUNT,{user},{sym},{amount}",
        f"SET_BUY_TRIGGER,{user},{sym},{amount}", f"CANCEL_SET_BUY,{user},{sym}",
        f"SET_SELL_AMOUNT,{user},{sym},{amount}", f"SET_SELL_TRIGGER,{user},{sym},{amount}",
        f"CANCEL_SET_SELL,{user},{sym}", f"DISPLAY_SUMMARY,{user}", f"QUOTE,{user},{sym}",
        f"ADD,{user},-1.00", f"BUY,{user},abc,1.00"]))
    return f"[{txn}] {body}"


@st.composite
def sessions(draw: st.DrawFn) -> list[tuple]:
    """Steps: lines sent together, time passing, quotes answered or failed, sweeps."""
    steps = []
    txn = 0
    for _ in range(draw(st.integers(5, 40))):
        kind = draw(st.sampled_from(["send", "send", "send", "wait", "answer", "fail",
                                     "sweep", "arm", "slow"]))
        user, sym = draw(st.sampled_from(USERS)), draw(st.sampled_from(SYMBOLS))
        if kind == "arm":  # a buy and a sell trigger that sweeps at a low or high price fire
            lines = [f"ADD,{user},500.00", f"BUY,{user},{sym},100.00", f"COMMIT_BUY,{user}",
                     f"SET_BUY_AMOUNT,{user},{sym},100.00", f"SET_BUY_TRIGGER,{user},{sym},50.00",
                     f"SET_SELL_AMOUNT,{user},{sym},60.00",
                     f"SET_SELL_TRIGGER,{user},{sym},150.00"]
            txn += len(lines)
            steps.append(("send", [f"[{txn - len(lines) + i + 1}] {line}"
                                   for i, line in enumerate(lines)]))
            steps.append(("answer", sym, 5_000))
        elif kind == "slow":  # a pending BUY's 60 s pass while its user waits on a quote, or not
            other = "XY" if sym == "ABC" else "ABC"
            txn += 2
            steps.append(("send", [f"[{txn - 1}] ADD,{user},50.00",
                                   f"[{txn}] BUY,{user},{sym},20.00"]))
            steps.append(("answer", sym, 1_000))
            steps.append(("wait", draw(st.sampled_from([0.0, 50.0]))))
            if draw(st.booleans()):
                txn += 2
                steps.append(("send", [f"[{txn - 1}] QUOTE,{user},{other}",
                                       f"[{txn}] COMMIT_BUY,{user}"]))
            steps.append(("wait", draw(st.sampled_from([15.0, 61.0]))))
            steps.append(("answer", other, 1_000))
        elif kind == "send":
            lines = []
            for _ in range(draw(st.integers(1, 4))):
                txn += draw(st.integers(0, 2))  # 0: a retry or a stale txn
                lines.append(_line(draw, max(txn, 1)))
            steps.append(("send", lines))
        elif kind == "wait":
            steps.append(("wait", draw(st.sampled_from([0.0, 1.0, 5.0, 30.0, 61.0]))))
        elif kind == "answer" or kind == "sweep":
            steps.append((kind, draw(st.sampled_from(SYMBOLS)), draw(st.integers(50, 30_000))))
        else:
            steps.append(("fail", draw(st.sampled_from(SYMBOLS))))
    return steps


def _run(shard: Shard, steps: list[tuple]) -> None:
    next_txn = 1_000_000
    for step in steps:
        if step[0] == "send":
            shard.send(*step[1])
        elif step[0] == "wait":
            shard.turn(step[1])
        elif step[0] == "answer":
            shard.quotes.answer(step[1], step[2], shard.now())
        elif step[0] == "fail":
            shard.quotes.fail(step[1])
        else:
            shard.quotes.prices[step[1]] = step[2]
            shard.turn(2.0)  # the sweep runs
            if shard.txn_requests():
                (_, token, count) = shard.txn_requests()[-1]
                shard.sent.remove(("T", token, count))
                shard.service.on_batch([("T", token, next_txn)])
                next_txn += count
        shard.turn()
    for symbol in SYMBOLS:  # answer what still waits, so every command is journaled
        shard.quotes.answer(symbol, 1_000, shard.now())
    shard.turn()
    shard.turn()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=sessions(), snapshot_interval=st.sampled_from([0.5, 3.0, 1000.0]))
def test_replaying_the_journal_gives_the_live_state_and_events(steps, snapshot_interval):
    with tempfile.TemporaryDirectory() as tmp:
        shard = Shard(Path(tmp), snapshot_interval=snapshot_interval)
        try:
            _run(shard, steps)
            live = {u: summary(a) for u, a in shard.service.engine.accounts.items()}
        finally:
            shard.service.stop()  # journals what is left, writes a last snapshot
            shard.journal.close()

        journal = SqliteJournal(Path(tmp), 0)
        try:
            from_snapshot = Engine()
            recover(from_snapshot, journal)
            assert {u: summary(a) for u, a in from_snapshot.accounts.items()} == live

            from_scratch = Engine()  # every record, no snapshot: the same events again
            for _seq, data in journal.records():
                for item in codec.decode_inputs(data):
                    apply_input(from_scratch, item)
                assert from_scratch.drain().events == codec.decode_events(data)
            assert {u: summary(a) for u, a in from_scratch.accounts.items()} == live
        finally:
            journal.close()
