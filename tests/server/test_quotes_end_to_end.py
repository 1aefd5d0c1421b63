"""Quotes through the running system: the cache, a bad quote server, Redis going away."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from server.quotes.redis_server import EmbeddedRedis
from tests.support.lines import LineClient

pytestmark = pytest.mark.e2e


def quote_fetches(conn: LineClient) -> tuple[int, int]:
    shards = conn.ask("STATS")["result"]["shards"]
    return (sum(s["quotes"]["fetches"] for s in shards),
            sum(s["quotes"]["hits_local"] + s["quotes"]["hits_redis"] for s in shards))


def test_a_quote_serves_every_user_within_60_s_with_one_quote_server_hit(system_factory):
    system = system_factory(prices={"ABC": 1234})
    with LineClient(system.host, system.port) as op:
        op.ask(f"AUTH,{system.token}")
        users = [f"user{i}" for i in range(6)]  # spread over both shards
        for user in users:
            op.ask(f"ADD,{user},100.00")
        replies = [op.ask(f"QUOTE,{user},ABC") for user in users]
        assert all(r["ok"] and r["result"]["price"] == "12.34" for r in replies)
        assert len({r["result"]["cryptokey"] for r in replies}) == 1
        fetches, hits = quote_fetches(op)
        assert fetches == 1 and hits == len(users) - 1
        dump = op.ask("DUMPLOG,all.xml")
        with open(dump["result"]["path"]) as f:
            text = f.read()
        assert text.count("<quoteServer>") == 1
        assert text.count("<debugEvent>") == len(users) - 1


class BadQuoteServer:
    """A quote server on 127.0.0.1 that answers garbage, or nothing at all."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            request = conn.recv(100).decode(errors="replace").strip()
            symbol, _, user = request.partition(",")
            if self.mode == "garbage":
                conn.sendall(f"NaN,{symbol},{user},1,key\n".encode())
                conn.close()
            elif self.mode == "wrong_symbol":
                conn.sendall(f"12.00,XYZ,{user},{int(time.time() * 1000)},key\n".encode())
                conn.close()
            else:  # silent: hold the connection open
                self._held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        for conn in self._held:
            conn.close()
        self.sock.close()


@pytest.mark.parametrize("mode", ["garbage", "wrong_symbol", "silent"])
def test_a_bad_quote_server_gives_quote_unavailable_and_changes_nothing(system_factory, mode):
    bad = BadQuoteServer(mode)
    try:
        system = system_factory(name=f"bad-{mode}", extra_args=[
            "--quote-server", f"127.0.0.1:{bad.port}", "--quote-timeout", "1"])
        # A reply that does not come within 10 s (the configured timeout is 1 s) fails the
        # test with TimeoutError.
        with LineClient(system.host, system.port, timeout=10) as op:
            op.ask(f"AUTH,{system.token}")
            op.ask("ADD,alice,100.00")
            reply = op.ask("BUY,alice,ABC,10.00")
            assert reply["error"]["code"] == "quote_unavailable"
            summary = op.ask("DISPLAY_SUMMARY,alice")["result"]
            assert summary["cash"] == "100.00" and summary["pending_buys"] == []
    finally:
        bad.close()


def test_redis_stopped_mid_run_changes_no_result(system_factory, tmp_path):
    redis = EmbeddedRedis(tmp_path / "own-redis")
    try:
        system = system_factory(prices={"ABC": 1000, "DEF": 2000},
                                extra_args=["--redis-url", redis.url])
        with LineClient(system.host, system.port) as op:
            op.ask(f"AUTH,{system.token}")
            op.ask("ADD,bob,1000.00")
            first = op.ask("BUY,bob,ABC,100.00")
            assert first["ok"] and first["result"]["shares"] == 10
            op.ask("COMMIT_BUY,bob")
            redis.stop()
            second = op.ask("BUY,bob,DEF,100.00")  # a new symbol: Redis is gone
            assert second["ok"] and second["result"]["shares"] == 5
            op.ask("COMMIT_BUY,bob")
            summary = op.ask("DISPLAY_SUMMARY,bob")["result"]
            assert summary["holdings"] == {"ABC": 10, "DEF": 5}
            assert summary["cash"] == "800.00"
    finally:
        redis.stop()
