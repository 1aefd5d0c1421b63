"""Hedging of the legacy quote client on a fake reactor (MemoryReactorClock): when attempts go out,
which one wins, and the budget that caps them. No real time or sockets."""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from server.quotes.errors import QuoteUnavailable
from server.quotes.legacy_client import (
    DEFAULT_HEDGE_AFTER,
    DEFAULT_HEDGE_BUDGET,
    DEFAULT_MAX_REQUESTS,
    HEDGE_RESERVE,
    LegacyQuoteClient,
)


class FakeServer:
    """The connections a client opened on a MemoryReactorClock, connected on demand."""

    def __init__(self, reactor: MemoryReactorClock) -> None:
        self.reactor = reactor
        self._protocols: dict[int, object] = {}
        self.transports: dict[int, StringTransport] = {}

    @property
    def opened(self) -> int:
        return len(self.reactor.tcpClients)

    def connect(self, i: int) -> StringTransport:
        """Complete connection i; returns its transport (the request is in `.value()`)."""
        factory = self.reactor.tcpClients[i][2]
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4444))
        transport = StringTransport()
        proto.makeConnection(transport)
        self._protocols[i], self.transports[i] = proto, transport
        return transport

    def reply(self, i: int, line: bytes) -> None:
        if i not in self._protocols:
            self.connect(i)
        self._protocols[i].dataReceived(line)

    def close(self, i: int) -> None:
        if i not in self._protocols:
            self.connect(i)
        self._protocols[i].connectionLost(Failure(ConnectionDone()))


def _client(**options) -> tuple[LegacyQuoteClient, FakeServer, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    client = LegacyQuoteClient("127.0.0.1", 4444, reactor=reactor, direct=False, **options)
    return client, FakeServer(reactor), reactor


def _line(key: str, symbol: str = "ABC") -> bytes:
    return f"1.00,{symbol},bob,1700000000000,{key}\n".encode()


def test_the_defaults_hedge_once_after_a_quarter_second_within_the_budget():
    assert (DEFAULT_HEDGE_AFTER, DEFAULT_MAX_REQUESTS, DEFAULT_HEDGE_BUDGET) == (0.25, 2, 1.45)
    client = LegacyQuoteClient("127.0.0.1", 4444, reactor=MemoryReactorClock(), direct=False)
    assert (client.hedge_after, client.max_requests, client.hedge_budget) == (0.25, 2, 1.45)


def test_each_unanswered_attempt_gets_the_next_one_after_hedge_after():
    client, server, clock = _client(hedge_after=0.03, max_requests=3)
    d = client.fetch("ABC", "bob")
    assert server.opened == 1
    clock.advance(0.029)
    assert server.opened == 1
    clock.advance(0.001)
    assert server.opened == 2
    clock.advance(0.03)
    assert server.opened == 3
    clock.advance(10 * 0.03)
    assert server.opened == 3  # max_requests
    assert server.connect(2).value() == b"ABC,bob\n"
    server.reply(2, _line("third"))
    assert d.result.cryptokey == "third"
    assert (client.fetches, client.requests_sent, client.hedges, client.hedges_won) == (1, 3, 2, 1)


def test_a_reply_before_hedge_after_sends_no_hedge_and_the_timer_is_cancelled():
    client, server, clock = _client(hedge_after=0.03, max_requests=3)
    d = client.fetch("ABC", "bob")
    clock.advance(0.01)
    server.reply(0, _line("fast"))
    assert d.result.cryptokey == "fast"
    assert clock.getDelayedCalls() == []  # neither the hedge timer nor the timeout is left
    clock.advance(1.0)
    assert (server.opened, client.hedges, client.hedges_won) == (1, 0, 0)


def test_the_first_attempt_winning_after_the_hedges_aborts_them():
    client, server, clock = _client(hedge_after=0.03, max_requests=3)
    d = client.fetch("ABC", "bob")
    clock.advance(0.03)
    clock.advance(0.03)
    hedges = [server.connect(1), server.connect(2)]
    server.reply(0, _line("first"))
    assert d.result.cryptokey == "first"
    assert all(t.disconnecting for t in hedges)
    assert (client.requests_sent, client.hedges_won) == (3, 0)


def test_a_failed_attempt_starts_the_next_at_once():
    client, server, clock = _client(hedge_after=0.03, max_requests=3)
    d = client.fetch("ABC", "bob")
    server.close(0)
    assert server.opened == 2  # no wait for the timer
    server.close(1)
    assert server.opened == 3
    server.close(2)
    assert clock.getDelayedCalls() == []
    with pytest.raises(QuoteUnavailable, match="all 3 requests failed"):
        d.result.raiseException()
    d.addErrback(lambda _: None)
    assert (client.requests_sent, client.failures) == (3, 1)


def test_the_timeout_ends_a_fetch_whose_attempts_never_answer():
    client, server, clock = _client(timeout=5.0, hedge_after=0.03, max_requests=3)
    d = client.fetch("ABC", "bob")
    failures = []
    d.addErrback(failures.append)
    clock.pump([0.03, 0.03, 4.92])  # 4.98 s
    assert (failures, server.opened) == ([], 3)
    clock.advance(0.03)
    assert failures[0].check(QuoteUnavailable)
    assert "5 s" in failures[0].value.reason
    assert client.failures == 1
    assert clock.getDelayedCalls() == []


def test_the_budget_caps_requests_even_when_no_attempt_ever_answers_in_time():
    # A server answering everything after 1 s: every attempt outlasts hedge_after, so without a
    # cap each fetch would send max_requests requests.
    client, server, clock = _client(hedge_after=0.03, max_requests=3, hedge_budget=1.25)
    fetches = 200
    results = []
    for n in range(fetches):
        first = server.opened
        client.fetch("ABC", "bob").addCallback(results.append)
        clock.advance(0.03)
        clock.advance(0.03)
        for i in range(first, server.opened):
            server.connect(i)
        clock.advance(0.94)
        server.reply(first, _line(f"n{n}"))
    assert len(results) == fetches
    assert client.requests_sent <= 1.25 * fetches + HEDGE_RESERVE
    assert client.requests_sent == fetches + client.hedges
    assert client.hedges >= 0.25 * fetches  # the budget is used, not just refused
    assert client.hedges_refused > 0


def test_the_reserve_lets_the_first_fetches_hedge():
    client, server, clock = _client(hedge_after=0.03, max_requests=2, hedge_budget=1.0)
    for _ in range(int(HEDGE_RESERVE) + 3):
        client.fetch("ABC", "bob").addErrback(lambda _: None)
        clock.advance(0.03)
    assert client.hedges == HEDGE_RESERVE  # budget 1.0: nothing beyond the reserve
    assert client.hedges_refused == 3


def test_a_failed_attempt_is_retried_only_within_the_budget():
    client, server, clock = _client(hedge_after=0.03, max_requests=2, hedge_budget=1.0)
    for _ in range(int(HEDGE_RESERVE)):  # use up the reserve
        client.fetch("ABC", "bob").addErrback(lambda _: None)
        clock.advance(0.03)
    sent = client.requests_sent
    d = client.fetch("ABC", "bob")
    failures = []
    d.addErrback(failures.append)
    server.close(sent)
    assert client.requests_sent == sent + 1  # no retry
    assert failures[0].check(QuoteUnavailable)


@pytest.mark.parametrize(
    "options", [{"hedge_after": -0.1}, {"max_requests": 0}, {"hedge_budget": 0.9}]
)
def test_nonsense_settings_are_refused(options):
    with pytest.raises(ValueError):
        LegacyQuoteClient("127.0.0.1", 4444, reactor=MemoryReactorClock(), direct=False,
                          **options)


def test_counters_show_hedges_and_how_long_fetches_took():
    client, server, clock = _client(hedge_after=0.03, max_requests=3)
    d = client.fetch("ABC", "bob")
    clock.advance(0.01)
    server.reply(0, _line("fast"))
    d = client.fetch("ABC", "bob")
    clock.pump([0.03, 0.03])
    server.reply(2, _line("third"))
    d = client.fetch("ABC", "bob")
    d.addErrback(lambda _: None)
    clock.pump([0.03, 0.03, 5.0])  # times out
    counters = client.counters()
    assert counters == {
        "fetches": 3, "requests_sent": 7, "failures": 1, "hedges": 4, "hedges_won": 1,
        "hedges_refused": 0, "fetch_le_25ms": 1, "fetch_le_50ms": 0, "fetch_le_100ms": 1,
        "fetch_le_250ms": 0, "fetch_le_1000ms": 0, "fetch_le_2000ms": 0,
        "fetch_over_2000ms": 1,
    }
