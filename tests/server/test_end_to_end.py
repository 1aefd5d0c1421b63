"""The whole system on 127.0.0.1: a workload replayed through the server agrees with the engine."""

from __future__ import annotations

import asyncio

import pytest

from bench.workload import read_workload, shipped
from protocol.client import DaytradeClient
from protocol.errors import ProtocolError
from protocol.parser import parse_request
from protocol.quote import PriceQuote
from server.audit.validate import validate_log
from server.shards.engine import Engine, NeedQuote, summary
from tests.server.conftest import workload_prices

pytestmark = pytest.mark.e2e


def engine_replay(name: str, prices: dict[str, int]) -> Engine:
    """The same workload through the pure engine, every quote at the fixed price."""
    engine = Engine()
    now = 1_764_072_000_000
    for item in read_workload(shipped(name)):
        if item.command == "DUMPLOG":
            continue
        try:
            cmd = parse_request(f"[{item.txn}] {item.text}")
        except ProtocolError:
            continue  # answered with an error, changes nothing
        outcome = engine.execute(cmd, now)
        if isinstance(outcome, NeedQuote):
            quote = PriceQuote(outcome.symbol, prices[outcome.symbol], now, "k", outcome.user)
            engine.execute(cmd, now, quote)
    return engine


def comparable(result: dict) -> dict:
    """A DISPLAY_SUMMARY result without the wall-clock parts (times, expiries)."""
    out = dict(result)
    out["pending_buys"] = [{k: v for k, v in p.items() if k != "expires_at"}
                           for p in result["pending_buys"]]
    out["pending_sells"] = [{k: v for k, v in p.items() if k != "expires_at"}
                            for p in result["pending_sells"]]
    out["transactions"] = [{k: v for k, v in t.items() if k != "time"}
                           for t in result["transactions"]]
    return out


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

    engine = engine_replay("10user.txt", prices)
    for user, result in summaries.items():
        expected = summary(engine.accounts[user])
        assert comparable(result) == comparable(expected), user
