"""The records the gateway pulls for an all-users DUMPLOG read back as the journal they came
from (what the dump needs of a journal: its records in order and its highest txn)."""

from __future__ import annotations

from server.remote_dump import PulledJournal


def test_pulled_records_read_back_in_order_and_after_a_seq(tmp_path):
    journal = PulledJournal(tmp_path / "shard-0.records")
    journal.append([(1, b"first"), (2, b"")])
    journal.append([(3, bytes(range(256)))])
    journal.highest_txn = 42
    assert list(journal.records()) == [(1, b"first"), (2, b""), (3, bytes(range(256)))]
    assert list(journal.records(after_seq=2)) == [(3, bytes(range(256)))]
    assert journal.max_txn() == 42
