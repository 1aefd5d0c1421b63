"""Side by side: the shard's Redis calls through TwistedRedis (redis_client.py), txredisapi and
redis-py's asyncio client.

Run from the repository root with txredisapi importable (`pip install txredisapi`):
`python docs/measurements/redis_client_vs_txredisapi.py [--asyncio] [OPS] [ROUNDS] [BURST]`.
It starts a private redis-server (server/quotes/redis_server.py), connects the clients to it on
the default reactor (the shards' own: epoll on Linux) in one process, or with --asyncio on
Twisted's asyncio reactor, which redis.asyncio needs (a call's Future made a Deferred with
Deferred.fromFuture, as a shard would), and in alternating rounds
times what a shard does with Redis: the get-or-lock script on a cached quote (the hit of every
quote lookup), the store script (SET with PX, and the lock released), a plain GET, a SET with PX,
and an MGET of 20 quotes. Calls go out in bursts of BURST (a loaded shard issues many in one
reactor turn, and both clients pipeline them on one connection) and, for the latency, one at a
time. Figures are the client's CPU (this process, where the shard would pay it) per call.
For the same comparison under `daytrade bench`, see txredisapi_adapter.py beside this file.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __name__ == "__main__" and "--asyncio" in sys.argv:
    from twisted.internet import asyncioreactor

    asyncioreactor.install(asyncio.new_event_loop())

import redis.asyncio
import txredisapi
from twisted.internet import defer, task

from server.quotes.cache import _GET_OR_LOCK, _STORE_AND_UNLOCK
from server.quotes.redis_client import TwistedRedis
from server.quotes.redis_server import EmbeddedRedis

QUOTE = "50012,1764860000000,alice,IRrR7UeTO35kSWUgG0QJKmB35sL27FKM7AVhP5qpjCgmWQeXFJs35g=="
KEYS = [f"bench:quote:S{i:02d}" for i in range(20)]

Call = Callable[[int], "defer.Deferred[Any]"]


def hand_written_calls(client: TwistedRedis) -> dict[str, Call]:
    lock_args = ["token-1", 10_000, 0]
    return {
        "get-or-lock hit": lambda i: client.run_script(
            _GET_OR_LOCK, [KEYS[i % 20], KEYS[i % 20] + ":lock"], lock_args),
        "store (SET PX)": lambda i: client.run_script(
            _STORE_AND_UNLOCK, [KEYS[i % 20], KEYS[i % 20] + ":lock"], [QUOTE, 60_000, ""]),
        "GET": lambda i: client.execute("GET", KEYS[i % 20]),
        "SET PX": lambda i: client.execute("SET", KEYS[i % 20], QUOTE, "PX", 60_000),
        "MGET 20": lambda i: client.execute("MGET", *KEYS),
    }


def txredisapi_calls(client: Any) -> dict[str, Call]:
    get_sha, store_sha = _GET_OR_LOCK.sha, _STORE_AND_UNLOCK.sha
    lock_args = ["token-1", 10_000, 0]
    return {
        "get-or-lock hit": lambda i: client.evalsha(
            get_sha, [KEYS[i % 20], KEYS[i % 20] + ":lock"], lock_args),
        "store (SET PX)": lambda i: client.evalsha(
            store_sha, [KEYS[i % 20], KEYS[i % 20] + ":lock"], [QUOTE, 60_000, ""]),
        "GET": lambda i: client.get(KEYS[i % 20]),
        "SET PX": lambda i: client.set(KEYS[i % 20], QUOTE, pexpire=60_000),
        "MGET 20": lambda i: client.mget(KEYS),
    }


def redis_py_calls(client: redis.asyncio.Redis) -> dict[str, Call]:
    def deferred(awaitable: Any) -> defer.Deferred[Any]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(awaitable))

    get_sha, store_sha = _GET_OR_LOCK.sha, _STORE_AND_UNLOCK.sha
    return {
        "get-or-lock hit": lambda i: deferred(client.evalsha(
            get_sha, 2, KEYS[i % 20], KEYS[i % 20] + ":lock", "token-1", 10_000, 0)),
        "store (SET PX)": lambda i: deferred(client.evalsha(
            store_sha, 2, KEYS[i % 20], KEYS[i % 20] + ":lock", QUOTE, 60_000, "")),
        "GET": lambda i: deferred(client.get(KEYS[i % 20])),
        "SET PX": lambda i: deferred(client.set(KEYS[i % 20], QUOTE, px=60_000)),
        "MGET 20": lambda i: deferred(client.mget(KEYS)),
    }


async def cpu_per_call(call: Call, ops: int, burst: int) -> float:
    """Microseconds of this process's CPU per call, `burst` calls in flight at a time."""
    started = time.process_time()
    for first in range(0, ops, burst):
        await defer.gatherResults([call(i) for i in range(first, min(first + burst, ops))])
    return (time.process_time() - started) / ops * 1e6


async def main(reactor: Any, ops: int, rounds: int, burst: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp))
        try:
            hand = TwistedRedis.from_url(server.url, timeout=5.0, reactor=reactor)
            host, port = server.url.removeprefix("redis://").split("/")[0].split(":")
            lib = await txredisapi.Connection(host, int(port), reconnect=False, charset=None,
                                              convertNumbers=False, replyTimeout=5)
            await hand.execute("SCRIPT", "LOAD", _GET_OR_LOCK.body)
            await hand.execute("SCRIPT", "LOAD", _STORE_AND_UNLOCK.body)
            for key in KEYS:
                await hand.execute("SET", key, QUOTE, "PX", 600_000)
            clients = {"hand-written": hand_written_calls(hand),
                       "txredisapi": txredisapi_calls(lib)}
            redis_py = None
            if "--asyncio" in sys.argv:
                # Its own pool: redis-py pipelines only inside an explicit pipeline(), so calls
                # made together go out on as many connections (one connection serialises them).
                redis_py = redis.asyncio.Redis(host=host, port=int(port))
                clients["redis.asyncio"] = redis_py_calls(redis_py)
            for what in clients["hand-written"]:  # warm both up, scripts cached by both
                for calls in clients.values():
                    await cpu_per_call(calls[what], 200, burst)
            for r in range(rounds):
                for what in clients["hand-written"]:
                    figures = []
                    for name, calls in clients.items():
                        piped = await cpu_per_call(calls[what], ops, burst)
                        single = await cpu_per_call(calls[what], ops // 10, 1)
                        figures.append(f"{name} {piped:5.1f} / {single:5.1f}")
                    print(f"round {r} {what:16s} us CPU per call (bursts of {burst} / one at a "
                          f"time): " + ", ".join(figures), flush=True)
            await hand.close()
            await lib.disconnect()
            if redis_py is not None:
                await defer.Deferred.fromFuture(asyncio.ensure_future(redis_py.aclose()))
        finally:
            server.stop()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:] if a != "--asyncio"]
    ops, rounds, burst = (args + [20_000, 3, 100][len(args):])[:3]
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, ops, rounds, burst)))
