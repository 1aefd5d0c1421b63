"""A shard's background snapshots: the accounts changed since the last one, as of one journal seq.

Taking one never stops the shard for long. The accounts are captured a few at a time, one slice
every SNAPSHOT_SLICE_GAP seconds, and an account that an input is about to change is captured first
(`changing`), so every account is copied as of the snapshot's seq although the shard goes on
meanwhile. Copying them all at once took 40-80 ms of the reactor for 600 accounts at the end of
final_2019, and encoding them in slices of 50 another 20-35 ms per slice (measured here with the
machine busy): the seconds with a snapshot had a p99 of 100-190 ms at half load. The JSON is made
on the reactor (the records are the shard's); zlib, which releases the GIL, and the
SQLite write run on the snapshot thread. A snapshot is written only once the journal record of
its seq is durable.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.python.failure import Failure

from server.shards.engine import Engine
from server.store import codec
from server.store.journal_port import ShardJournal, SnapshotAccount, TxChunk

log = logging.getLogger("daytrade.shard")

#: A snapshot is taken once this many inputs were journaled since the last one (or once the
#: last one is `snapshot_interval` old), so a restart replays at most about this many. Replay
#: runs at ~11 us an input here: with 100,000, a SIGKILLed `daytrade up` on final_2019's data
#: answered after 2.05-2.07 s (both shards replaying on 2 cores); with 50,000, after 1.54-1.58 s,
#: for a snapshot every ~2.8 s a shard at 36,000 commands/s (disk per command unchanged, 422-424
#: bytes, as the account docs are compressed; 2026-12-05).
SNAPSHOT_EVERY = 50_000

#: Accounts captured and encoded per slice (about 1 ms of work at final_2019's sizes).
SNAPSHOT_SLICE = 10

#: Seconds between slices. Slices in back-to-back turns kept the reactor thread from ever
#: sleeping, so the commit thread waited for the GIL (up to the 5 ms switch interval, several
#: times an append) and a shard's replies stalled for most of a capture: at half load the
#: seconds with a snapshot had 400-1,500 replies over 50 ms; with 4 ms between slices, 67-431.
SNAPSHOT_SLICE_GAP = 0.004


@dataclass
class _Snapshot:
    """One snapshot in the making: as of journal record `seq`."""

    seq: int
    pending: dict[str, None]  # changed since the last snapshot, not captured yet, in order
    captured: list[tuple[str, dict[str, Any], int, int, list[Any]]] = field(default_factory=list)
    # (user, codec.account_doc, tx count, index of the first new record, the new records)
    accounts: list[SnapshotAccount] = field(default_factory=list)  # JSON docs, not compressed
    chunks: list[tuple[str, int, bytes]] = field(default_factory=list)  # JSON, not compressed
    encoded: int = 0  # how many of `captured` are in `accounts` and `chunks`
    written: bool = False  # set by the snapshot thread once the transaction is committed


class SnapshotTaker:
    """Captures, encodes and writes one shard's snapshots; the shard says when to take one
    (`begin`), which seq is durable (`durable`) and which account is about to change
    (`changing`)."""

    def __init__(self, engine: Engine, journal: ShardJournal, reactor: Any, *,
                 submit: Callable[[Callable[[], Any], Callable[[Any], None],
                                   Callable[[Failure], None]], None] | None,
                 on_captured: Callable[[], None] = lambda: None, index: int = 0,
                 slice_gap: float = SNAPSHOT_SLICE_GAP) -> None:
        self._engine = engine
        self._journal = journal
        self._reactor = reactor
        self._submit = submit  # the snapshot thread's; None: write at once (tests)
        self._on_captured = on_captured
        self._index = index
        self._slice_gap = slice_gap
        #: Accounts changed since the last capture began.
        self.touched: set[str] = set()
        #: Per user, how many of its transaction records the snapshots hold (records never
        #: change, so each snapshot takes only the new ones).
        self.tx_saved: dict[str, int] = {}
        self._durable_seq = 0
        self._current: _Snapshot | None = None  # being captured, encoded or written
        self._writing = False
        self._slice_call: Any = None

    @property
    def busy(self) -> bool:
        """A snapshot is being captured, encoded or written."""
        return self._current is not None

    @property
    def capturing(self) -> bool:
        """Some account of the snapshot in the making is not captured yet."""
        return self._current is not None and bool(self._current.pending)

    def changing(self, user: str) -> None:
        """An input is about to change `user`'s account: capture it first if the snapshot in
        the making still needs it as it is, and keep it for the next snapshot."""
        current = self._current
        if current is not None and user in current.pending:
            del current.pending[user]
            self._capture(current, user)
            if not current.pending:
                self._on_captured()
        self.touched.add(user)

    def durable(self, seq: int) -> None:
        """Journal record `seq` (and every one before it) is durable."""
        self._durable_seq = seq
        self._write_when_ready()

    def begin(self, seq: int) -> None:
        """Start a snapshot of the state as it is now, which reflects records 1 .. `seq`."""
        assert self._current is None, "one snapshot at a time"
        # In name order: what a snapshot holds at each turn does not depend on the hash seed.
        self._current = _Snapshot(seq, dict.fromkeys(sorted(self.touched)))
        self.touched = set()
        self._schedule_slice(0)

    def abandon(self) -> None:
        """Drop the snapshot in the making (a stop): its accounts go in the next one."""
        current, self._current = self._current, None
        if self._slice_call is not None and self._slice_call.active():
            self._slice_call.cancel()
        self._slice_call = None
        if current is not None and not current.written:
            # (A write that the stopped snapshot thread finished is kept: its report back to
            # the reactor never ran.)
            self.touched.update(current.pending)
            self._not_written(current)

    def write_now(self, seq: int) -> None:
        """Capture, encode and write everything changed, as of `seq`, at once (a clean stop)."""
        snapshot = _Snapshot(seq, {})
        for user in self.touched:
            self._capture(snapshot, user)
        self.touched = set()
        self._encode(snapshot, len(snapshot.captured))
        self._write(snapshot)

    # --- internals ----------------------------------------------------------------------------

    def _capture(self, snapshot: _Snapshot, user: str) -> None:
        acct = self._engine.accounts.get(user)
        if acct is None:
            return
        count = len(acct.transactions)
        start = self.tx_saved.get(user, 0)
        snapshot.captured.append((user, codec.account_doc(acct), count, start,
                                  acct.transactions[start:count]))
        self.tx_saved[user] = count

    def _schedule_slice(self, delay: float) -> None:
        if self._slice_call is None:
            self._slice_call = self._reactor.callLater(delay, self._slice)

    def _slice(self) -> None:
        """One turn's share: capture a few accounts, then encode a few captured ones."""
        self._slice_call = None
        current = self._current
        if current is None:
            return
        if current.pending:
            for user in list(itertools.islice(current.pending, SNAPSHOT_SLICE)):
                del current.pending[user]
                self._capture(current, user)
            if not current.pending:
                self._on_captured()
        self._encode(current, SNAPSHOT_SLICE)
        if current.pending or current.encoded < len(current.captured):
            self._schedule_slice(self._slice_gap)
        else:
            self._write_when_ready()

    def _encode(self, snapshot: _Snapshot, most: int) -> None:
        for user, doc, count, start, records in snapshot.captured[
                snapshot.encoded:snapshot.encoded + most]:
            snapshot.accounts.append(SnapshotAccount(user, codec.account_json(doc), count))
            if records:
                snapshot.chunks.append((user, start, codec.tx_records_json(records)))
            snapshot.encoded += 1

    def _write_when_ready(self) -> None:
        current = self._current
        if (current is None or self._writing or current.pending
                or current.encoded < len(current.captured) or self._durable_seq < current.seq):
            return
        self._writing = True
        if self._submit is None:
            try:
                self._write(current)
            except Exception:
                self._failed(current, Failure())
            else:
                self._written(current)
            return
        self._submit(lambda: self._write(current), lambda _: self._written(current),
                     lambda failure: self._failed(current, failure))

    def _write(self, snapshot: _Snapshot) -> None:
        """On the snapshot thread: compress the accounts and records, and write it all in one
        transaction."""
        self._journal.write_snapshot(
            snapshot.seq,
            [SnapshotAccount(a.user, codec.compress(a.doc), a.tx_count) for a in snapshot.accounts],
            [TxChunk(user, start, codec.compress(raw)) for user, start, raw in snapshot.chunks])
        snapshot.written = True

    def _written(self, snapshot: _Snapshot) -> None:
        self._writing = False
        if self._current is snapshot:
            self._current = None

    def _failed(self, snapshot: _Snapshot, failure: Failure) -> None:
        log.error("snapshot %d of shard %d failed: %s", snapshot.seq, self._index,
                  failure.getErrorMessage())
        self._writing = False
        if self._current is snapshot:
            self._current = None
        self._not_written(snapshot)

    def _not_written(self, snapshot: _Snapshot) -> None:
        """A snapshot that was never written: nothing is lost (the journal has it all), and its
        accounts and records go in the next one."""
        for user, _doc, _count, start, _records in snapshot.captured:
            self.touched.add(user)
            self.tx_saved[user] = min(self.tx_saved.get(user, 0), start)
