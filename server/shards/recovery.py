"""A shard's state rebuilt from its journal: the newest snapshot, then the records after it
replayed through the engine (server/shards/inputs.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from server.shards.account import Account
from server.shards.engine import Engine
from server.shards.inputs import apply_input
from server.store import codec
from server.store.journal_port import ShardJournal


@dataclass
class Recovered:
    """Where a recovery left the journal: the last seq applied, how many records (and inputs)
    were replayed after the snapshot, and per user the transaction records the snapshots hold."""

    seq: int = 0
    snapshot_seq: int = 0
    replayed: int = 0
    inputs: int = 0
    tx_saved: dict[str, int] = field(default_factory=dict)


def recover(engine: Engine, journal: ShardJournal) -> Recovered:
    """Load `journal`'s newest snapshot into `engine` and replay every record after it."""
    state = Recovered()
    snapshot = journal.load_snapshot()
    if snapshot is not None:
        state.seq = state.snapshot_seq = snapshot.seq
        for loaded in snapshot.accounts:
            engine.load(codec.decode_account(loaded.doc, loaded.chunks))
            state.tx_saved[loaded.user] = loaded.tx_count
    for seq, data in journal.records(state.seq):
        if seq != state.seq + 1:
            raise RuntimeError(f"shard {journal.shard}: journal record {state.seq + 1} is "
                               f"missing (found {seq} after {state.seq})")
        inputs = codec.decode_inputs(data)
        for item in inputs:
            apply_input(engine, item)
        state.inputs += len(inputs)
        engine.drain()  # the events are in the journal already
        state.replayed += 1
        state.seq = seq
    return state


def recover_all(open_journal: Callable[[str, int], ShardJournal], location: str,
                shards: int) -> dict[str, Account]:
    """Every account of every shard at `location` (tests and tools)."""
    accounts: dict[str, Account] = {}
    for index in range(shards):
        journal = open_journal(location, index)
        try:
            engine = Engine(f"shard-{index}")
            recover(engine, journal)
            accounts.update(engine.accounts)
        finally:
            journal.close()
    return accounts
