"""The account document reuses its rendered parts only while they are still true."""

from __future__ import annotations

import dataclasses

from bench.workload import read_workload, shipped
from protocol.errors import ProtocolError
from protocol.parser import parse_request
from protocol.quote import PriceQuote
from server.shards.account import Account
from server.shards.engine import Engine, NeedQuote

T0 = 1_764_072_000_000


def fresh_doc(acct: Account) -> dict:
    return dataclasses.replace(acct, doc_parts=None).to_doc()


def test_every_document_of_a_workload_replay_equals_a_fresh_rendering():
    engine = Engine()
    now = T0
    checked = 0
    txn = 10**9
    for n, item in enumerate(read_workload(shipped("10user.txt"))):
        if item.command == "DUMPLOG":
            continue
        now += 700  # pending entries expire along the way
        try:
            cmd = parse_request(f"[{item.txn}] {item.text}")
        except ProtocolError:
            continue
        outcome = engine.execute(cmd, now)
        if isinstance(outcome, NeedQuote):
            price = 50 + (hash(outcome.symbol) % 2000 + n) % 3000
            engine.execute(cmd, now, PriceQuote(outcome.symbol, price, now, "k", outcome.user))
        if n % 97 == 0:
            engine.expire_due(now)
            for symbol, user in engine.armed_symbols().items():
                txn += 1
                engine.fire_triggers(PriceQuote(symbol, 100 + n % 900, now, "k", user), now,
                                     lambda t=txn: t)
        if n % 13 == 0:
            for acct in engine.accounts.values():
                assert acct.to_doc() == fresh_doc(acct), (item, acct.user)
                checked += 1
    assert checked > 1000
