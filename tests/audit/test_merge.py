"""DUMPLOG's merge of the shards' journals: the log's order, the user filter, spilled runs and
their clean-up however the iteration ends."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.audit.merge import merged_events, sort_key
from server.shards.audit_events import ACCOUNT_TRANSACTION, USER_COMMAND, AuditEvent

T0 = 1167631200000


def ev(txn: int, user: str | None = "alice", seq: int = 1, server: str = "shard-0",
       kind: str = USER_COMMAND, **fields: object) -> AuditEvent:
    return AuditEvent(kind, txn, seq, T0 + txn, server, user, **fields)


def keys(events: list[AuditEvent]) -> list[tuple[int, str, int, str]]:
    return [sort_key(e) for e in events]


def leftovers(spill_dir: Path) -> list[Path]:
    return list(spill_dir.iterdir())


def test_two_shards_interleave_by_txn():
    shard0 = [[ev(1, "a"), ev(3, "a", 2)], [ev(5, "a", 3)]]
    shard1 = [[ev(2, "b", server="shard-1")], [ev(4, "b", 2, server="shard-1")]]
    assert [e.txn for e in merged_events([shard0, shard1])] == [1, 2, 3, 4, 5]


def test_a_straggler_far_out_of_order_lands_in_place(tmp_path):
    records = [[ev(t, seq=t)] for t in range(10, 1000)]
    records.append([ev(3, "zed", 1, kind=ACCOUNT_TRANSACTION, action="add", funds=100)])
    out = list(merged_events([records], run_size=50, spill_dir=tmp_path))
    assert out[0] == ev(3, "zed", 1, kind=ACCOUNT_TRANSACTION, action="add", funds=100)
    assert [e.txn for e in out[1:]] == list(range(10, 1000))


def test_ties_on_txn_are_broken_by_user_then_seq_then_server():
    records = [[ev(7, "bob", 2, "shard-1"), ev(7, "bob", 1, "shard-1"), ev(7, "alice", 9),
                ev(7, "bob", 1, "shard-0")]]
    assert keys(list(merged_events([records]))) == [
        (7, "alice", 9, "shard-0"), (7, "bob", 1, "shard-0"), (7, "bob", 1, "shard-1"),
        (7, "bob", 2, "shard-1")]


def test_events_without_a_user_sort_as_the_empty_user():
    nobody = ev(5, None, -1, "gateway", kind="errorEvent", message="bad user")
    records = [[ev(5, "alice", 1), nobody, ev(4, "zed", 1)]]
    out = list(merged_events([records]))
    assert out == [ev(4, "zed", 1), nobody, ev(5, "alice", 1)]
    assert out[1].user is None


def test_the_user_filter_keeps_only_that_users_events(tmp_path):
    records = [[ev(t, "alice" if t % 3 else "bob", t) for t in range(100, 0, -1)]]
    out = list(merged_events([records], user="bob", run_size=7, spill_dir=tmp_path))
    assert [e.txn for e in out] == list(range(3, 101, 3))
    assert {e.user for e in out} == {"bob"}


def test_several_runs_give_the_same_order_as_sorted(tmp_path):
    shard0 = [[ev((t * 37) % 501, f"u{t % 5}", t) for t in range(i, i + 9)]
              for i in range(0, 450, 9)]
    shard1 = [[ev((t * 11) % 499, f"u{t % 7}", t, "shard-1")] for t in range(300)]
    everything = [e for shard in (shard0, shard1) for record in shard for e in record]
    out = list(merged_events([shard0, shard1], run_size=16, spill_dir=tmp_path))
    assert out == sorted(everything, key=sort_key)
    assert all(type(e) is AuditEvent for e in out)


def test_nothing_is_spilled_when_everything_fits(tmp_path):
    records = [[ev(t, seq=t)] for t in range(50, 0, -1)]
    merged = merged_events([records], run_size=1000, spill_dir=tmp_path)
    assert next(merged).txn == 1
    assert leftovers(tmp_path) == []
    assert len(list(merged)) == 49


def _big(n: int = 300) -> list[list[AuditEvent]]:
    return [[ev(t, seq=t)] for t in range(n, 0, -1)]


def test_temporary_files_are_removed_after_the_last_event(tmp_path):
    merged = merged_events([_big()], run_size=10, spill_dir=tmp_path)
    next(merged)
    assert leftovers(tmp_path)  # the runs really went to disk
    assert len(list(merged)) == 299
    assert leftovers(tmp_path) == []


def test_temporary_files_are_removed_when_the_consumer_closes_early(tmp_path):
    merged = merged_events([_big()], run_size=10, spill_dir=tmp_path)
    assert [next(merged).txn for _ in range(3)] == [1, 2, 3]
    merged.close()
    assert leftovers(tmp_path) == []


def test_temporary_files_are_removed_when_the_consumer_raises(tmp_path):
    def consume() -> None:
        for e in merged_events([_big()], run_size=10, spill_dir=tmp_path):
            if e.txn == 5:
                raise RuntimeError("the XML writer failed")

    with pytest.raises(RuntimeError):
        consume()
    assert leftovers(tmp_path) == []


def test_temporary_files_are_removed_when_a_stream_fails(tmp_path):
    def journal():
        yield from _big()
        raise OSError("journal unreadable")

    with pytest.raises(OSError):
        list(merged_events([journal()], run_size=10, spill_dir=tmp_path))
    assert leftovers(tmp_path) == []


def test_the_collector_is_running_again_once_events_flow(tmp_path):
    merged = merged_events([_big()], run_size=10, spill_dir=tmp_path)
    next(merged)
    assert gc.isenabled()
    merged.close()


def test_empty_streams_give_nothing(tmp_path):
    assert list(merged_events([], spill_dir=tmp_path)) == []
    assert list(merged_events([[], [[]], [[], []]], run_size=1, spill_dir=tmp_path)) == []
    assert leftovers(tmp_path) == []


def test_run_size_must_be_positive():
    with pytest.raises(ValueError):
        merged_events([], run_size=0)


_events = st.builds(
    ev, txn=st.integers(0, 40), user=st.one_of(st.none(), st.sampled_from(["", "a", "b", "cc"])),
    seq=st.integers(-2, 5), server=st.sampled_from(["gateway", "shard-0", "shard-1"]),
    symbol=st.one_of(st.none(), st.sampled_from(["ABC", "XYZ"])))


@st.composite
def _journals(draw: st.DrawFn) -> tuple[list[list[list[AuditEvent]]], list[AuditEvent]]:
    """Random events dealt into random streams, each cut into random records."""
    events = draw(st.lists(_events, max_size=80))
    count = draw(st.integers(1, 4))
    streams: list[list[list[AuditEvent]]] = [[] for _ in range(count)]
    dealt: list[list[AuditEvent]] = [[] for _ in range(count)]
    for e in events:
        dealt[draw(st.integers(0, count - 1))].append(e)
    for stream, mine in zip(streams, dealt):
        while mine:
            size = draw(st.integers(0, len(mine)))
            stream.append(mine[:size])
            mine = mine[size:]
    return streams, [e for mine in streams for record in mine for e in record]


@settings(max_examples=150, deadline=None)
@given(_journals(), st.integers(1, 30))
def test_output_is_every_event_sorted_by_the_logs_key(journals, run_size):
    streams, everything = journals
    out = list(merged_events(streams, run_size=run_size))
    assert out == sorted(everything, key=sort_key)
