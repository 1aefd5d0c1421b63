"""The legacy quote-server client: strict parsing, timeout, hedging, counters."""

from __future__ import annotations

import socket

import pytest
from twisted.internet.defer import CancelledError
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from protocol.quote import PriceQuote
from server.quotes.errors import QuoteUnavailable
from server.quotes.legacy_client import BadQuoteReply, LegacyQuoteClient, parse_quote_reply
from server.quotes.simulator import Latency, simulated_price_cents
from tests.quotes.quote_servers import (
    Behaviour,
    FakeClockReactor,
    ScriptedQuoteServer,
    listen_simulator,
    wait_until,
)

GOOD = b"123.45,ABC,bob,1700000000000,k3y+/=="


# -- parsing --------------------------------------------------------------------------------------


def test_a_valid_reply_parses_to_a_fresh_quote_in_cents():
    assert parse_quote_reply(GOOD, "ABC", "bob") == PriceQuote(
        "ABC", 12345, 1_700_000_000_000, "k3y+/==", "bob", fresh=True
    )


@pytest.mark.parametrize(
    ("price", "cents"), [("1", 100), ("0.01", 1), ("7.5", 750), ("9999999999.99", 999999999999)]
)
def test_prices_in_every_allowed_form_parse_to_cents(price, cents):
    line = f"{price},ABC,bob,1700000000000,key".encode()
    assert parse_quote_reply(line, "ABC", "bob").price == cents


def test_a_trailing_carriage_return_is_allowed():
    assert parse_quote_reply(GOOD + b"\r", "ABC", "bob").price == 12345


@pytest.mark.parametrize(
    "line",
    [
        b"123.45,XYZ,bob,1700000000000,key",  # wrong symbol echoed
        b"123.45,ABC,amy,1700000000000,key",  # wrong user echoed
        b"NaN,ABC,bob,1700000000000,key",
        b"nan,ABC,bob,1700000000000,key",
        b"inf,ABC,bob,1700000000000,key",
        b"-1.00,ABC,bob,1700000000000,key",
        b"0.00,ABC,bob,1700000000000,key",
        b"0,ABC,bob,1700000000000,key",
        b"1.234,ABC,bob,1700000000000,key",
        b"1e3,ABC,bob,1700000000000,key",
        b" 12.00,ABC,bob,1700000000000,key",
        b"12.,ABC,bob,1700000000000,key",
        b"\xd9\xa1.00,ABC,bob,1700000000000,key",  # Arabic-Indic digit one
        b"12345678901.00,ABC,bob,1700000000000,key",
        b"123.45,ABC,bob,1700000000000,key,extra",  # extra field
        b"123.45,ABC,bob,1700000000000",  # missing field
        b"123.45,ABC,bob,17000.5,key",
        b"123.45,ABC,bob,-1700000000000,key",
        b"123.45,ABC,bob,,key",
        b"123.45,ABC,bob,1700000000000,",  # empty cryptokey
        b"123.45,ABC,bob,1700000000000,ke\x01y",
        b"123.45,ABC,bob,1700000000000,ke\ty",
        b"123.45,ABC,bob,1700000000000,k\x7fey",
        b"123.45,ABC,bob,1700000000000,\xff\xfe",
        b"",
        b"error,unknown symbol",
    ],
)
def test_garbage_replies_are_rejected(line):
    with pytest.raises(BadQuoteReply):
        parse_quote_reply(line, "ABC", "bob")


# -- over TCP -------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LegacyClientTest(TestCase):
    """Real connections on 127.0.0.1; the client's hedge timer and timeout (and the scripted
    server's delays) run on a fake clock, so every wait is the test's own `advance`."""

    def setUp(self) -> None:
        self.reactor = FakeClockReactor()

    def client(self, port: int, **config: float) -> LegacyQuoteClient:
        return LegacyQuoteClient("127.0.0.1", port, reactor=self.reactor, **config)

    def scripted(self, *behaviours: Behaviour) -> tuple[ScriptedQuoteServer, int]:
        server = ScriptedQuoteServer(list(behaviours), clock=self.reactor)
        return server, server.listen(self)

    async def test_fetches_a_fresh_quote_from_the_simulator(self):
        _, port = listen_simulator(self, seed=8)
        client = self.client(port)
        quote = await client.fetch("IBM", "carol")
        assert (quote.symbol, quote.user, quote.fresh) == ("IBM", "carol", True)
        assert quote.price == simulated_price_cents(8, "IBM", quote.quote_time)
        assert (client.fetches, client.requests_sent, client.failures) == (1, 1, 0)

    async def test_a_fetch_logs_nothing_of_its_connections(self):
        _, port = listen_simulator(self, seed=8)
        client = self.client(port)
        logged: list[dict] = []
        globalLogPublisher.addObserver(logged.append)
        try:
            await client.fetch("IBM", "carol")
        finally:
            globalLogPublisher.removeObserver(logged.append)
        assert [e for e in logged if "factory" in str(e.get("log_format", "")).lower()] == []

    async def _fails_on(self, reply: bytes, *, close: bool = True) -> None:
        server, port = self.scripted(Behaviour(reply=reply, close=close))
        client = self.client(port, timeout=5.0, hedge_after=1.0, max_requests=2)
        d = client.fetch("ABC", "bob")
        # The clock stands still: a failed attempt starts the next at once, not on the timer,
        # and both failing ends the fetch.
        await wait_until(lambda: d.called)
        with pytest.raises(QuoteUnavailable) as caught:
            await d
        assert caught.value.symbol == "ABC"
        assert (client.fetches, client.requests_sent, client.failures) == (1, 2, 1)
        assert server.requests == [b"ABC,bob\n", b"ABC,bob\n"]
        await server.all_closed()

    async def test_rejects_a_reply_echoing_the_wrong_symbol(self):
        await self._fails_on(b"123.45,XYZ,bob,1700000000000,key\n")

    async def test_rejects_a_reply_echoing_the_wrong_user(self):
        await self._fails_on(b"123.45,ABC,amy,1700000000000,key\n")

    async def test_rejects_a_nan_price(self):
        await self._fails_on(b"NaN,ABC,bob,1700000000000,key\n")

    async def test_rejects_a_negative_price(self):
        await self._fails_on(b"-12.00,ABC,bob,1700000000000,key\n")

    async def test_rejects_extra_fields(self):
        await self._fails_on(b"12.00,ABC,bob,1700000000000,key,more\n")

    async def test_rejects_a_reply_closed_mid_line(self):
        await self._fails_on(b"12.00,ABC,bob,17000")

    async def test_rejects_a_close_without_any_reply(self):
        await self._fails_on(b"")

    async def test_rejects_data_after_the_reply_line(self):
        await self._fails_on(b"12.00,ABC,bob,1700000000000,key\nmore\n")

    async def test_rejects_an_endless_line(self):
        await self._fails_on(b"1" * 5000, close=False)

    async def test_a_refused_connection_is_quote_unavailable(self):
        client = self.client(_closed_port(), timeout=5.0, hedge_after=1.0, max_requests=2)
        d = client.fetch("ABC", "bob")
        # The clock only turns by 0 (a failed connect is reported a turn later): no timer ended it.
        await wait_until(lambda: self.reactor.advance(0) or d.called)
        with pytest.raises(QuoteUnavailable):
            await d
        assert (client.requests_sent, client.failures) == (2, 1)

    async def test_a_silent_server_fails_the_fetch_at_its_timeout_not_before(self):
        server, port = self.scripted(Behaviour(reply=None))
        client = self.client(port, timeout=0.3, hedge_after=0.1, max_requests=2)
        d = client.fetch("ABC", "bob")
        await wait_until(lambda: len(server.requests) == 1)
        self.reactor.advance(0.1)  # the hedge goes out
        await wait_until(lambda: len(server.requests) == 2)
        self.reactor.advance(0.199)
        assert not d.called
        self.reactor.advance(0.001)
        with pytest.raises(QuoteUnavailable) as caught:
            await d
        assert "0.3 s" in caught.value.reason
        assert (client.requests_sent, client.failures) == (2, 1)
        await server.all_closed()  # both attempts were aborted

    async def test_a_slow_first_reply_is_hedged_and_the_hedge_wins(self):
        server, port = self.scripted(
            Behaviour(reply=b"1.00,ABC,bob,1700000000000,slow\n", delay=3.0),
            Behaviour(reply=b"2.00,ABC,bob,1700000000001,fast\n"),
        )
        client = self.client(port, timeout=5.0, hedge_after=0.05, max_requests=2)
        d = client.fetch("ABC", "bob")
        await wait_until(lambda: len(server.requests) == 1)
        self.reactor.advance(0.05)
        quote = await d
        assert (quote.price, quote.cryptokey) == (200, "fast")
        assert (client.fetches, client.requests_sent, client.failures) == (1, 2, 0)
        await server.all_closed()  # the slow attempt was aborted, not left waiting

    async def test_a_fast_first_reply_sends_no_hedge(self):
        _, port = listen_simulator(self)
        client = self.client(port, timeout=5.0, hedge_after=2.0)
        for _ in range(3):
            await client.fetch("ABC", "bob")
        assert (client.fetches, client.requests_sent) == (3, 3)

    async def test_the_first_attempt_can_still_win_after_the_hedge_went_out(self):
        server, port = self.scripted(
            Behaviour(reply=b"1.00,ABC,bob,1700000000000,first\n", delay=0.2),
            Behaviour(reply=None),
        )
        client = self.client(port, timeout=5.0, hedge_after=0.05, max_requests=2)
        d = client.fetch("ABC", "bob")
        await wait_until(lambda: len(server.requests) == 1)
        self.reactor.advance(0.05)  # the hedge goes out
        await wait_until(lambda: len(server.requests) == 2)
        self.reactor.advance(0.15)  # the first attempt's reply is written
        quote = await d
        assert quote.cryptokey == "first"
        assert client.requests_sent == 2
        await server.all_closed()

    async def test_the_legacy_simulator_is_served_by_hedging(self):
        # Both on the real clock: the simulator's real legacy latencies against real hedging.
        _, port = listen_simulator(self, seed=2, latency=Latency.parse("legacy"))
        client = LegacyQuoteClient("127.0.0.1", port, timeout=5.0, hedge_after=0.05,
                                   max_requests=3)
        quotes = [await client.fetch(sym, "bob") for sym in ["A", "B", "C", "D", "E", "F"]]
        assert [q.symbol for q in quotes] == ["A", "B", "C", "D", "E", "F"]
        assert client.requests_sent >= client.fetches == 6

    async def test_cancelling_a_fetch_aborts_its_connections(self):
        server, port = self.scripted(Behaviour(reply=None))
        client = self.client(port, timeout=5.0, hedge_after=0.05, max_requests=2)
        d = client.fetch("ABC", "bob")
        await wait_until(lambda: len(server.requests) == 1)
        self.reactor.advance(0.05)
        await wait_until(lambda: server.connections == 2 and len(server.requests) == 2)
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        await server.all_closed()

    async def test_the_request_leaves_in_the_turn_that_opens_the_connection(self):
        # A plain listening socket, read without any reactor turn in between: connectTCP needed
        # three turns before the request went out.
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(5.0)
            client = self.client(listener.getsockname()[1], timeout=5.0)
            d = client.fetch("ABC", "bob")
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5.0)
                assert conn.recv(100) == b"ABC,bob\n"
                conn.sendall(b"12.34,ABC,bob,1700000000000,key\n")
            quote = await d
        assert (quote.symbol, quote.price, quote.fresh) == ("ABC", 1234, True)

    async def test_a_host_name_still_works_through_twisteds_resolver(self):
        _, port = listen_simulator(self, seed=8)
        client = LegacyQuoteClient("localhost", port, reactor=self.reactor)
        quote = await client.fetch("IBM", "carol")
        assert quote.symbol == "IBM" and client.requests_sent == 1
