"""The legacy quote-server simulator: deterministic quotes, fixed prices, latency, bad requests."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import TestCase

from server.quotes.legacy_client import parse_quote_reply
from server.quotes.simulator import (
    LEGACY_LATENCY_TABLE,
    LISTEN_BACKLOG,
    Latency,
    QuoteSimulator,
    legacy_delay_ms,
    simulated_cryptokey,
    simulated_price_cents,
)
from tests.quotes.quote_servers import FakeClockReactor, listen_simulator, wait_until

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ["A", "AB", "ABC", "XYZ", "Q", "IBM", "GO", "ZZZ"]


# -- pure functions -------------------------------------------------------------------------------


def test_prices_are_the_same_for_the_same_seed_symbol_and_time():
    for symbol in SYMBOLS:
        assert simulated_price_cents(7, symbol, 1_700_000_000_000) == simulated_price_cents(
            7, symbol, 1_700_000_000_000
        )


def test_prices_differ_between_seeds():
    at = 1_700_000_000_000
    differing = [
        s for s in SYMBOLS if simulated_price_cents(1, s, at) != simulated_price_cents(2, s, at)
    ]
    assert len(differing) >= len(SYMBOLS) - 1


def test_prices_are_positive_and_stay_within_five_percent_of_their_base_over_time():
    for symbol in SYMBOLS:
        prices = [simulated_price_cents(3, symbol, t * 10_000) for t in range(200)]
        assert min(prices) > 0
        assert max(prices) <= min(prices) * 1.11
        assert len(set(prices)) > 1  # it moves


def test_price_holds_within_one_ten_second_step():
    assert simulated_price_cents(3, "ABC", 1_700_000_000_000) == simulated_price_cents(
        3, "ABC", 1_700_000_009_999
    )


def test_cryptokey_is_deterministic_base64_without_commas():
    key = simulated_cryptokey(5, "ABC", "bob", 1_700_000_000_000)
    assert key == simulated_cryptokey(5, "ABC", "bob", 1_700_000_000_000)
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", key)
    assert key != simulated_cryptokey(5, "ABC", "amy", 1_700_000_000_000)
    assert key != simulated_cryptokey(6, "ABC", "bob", 1_700_000_000_000)


def test_reply_line_is_the_same_for_two_simulators_with_one_seed():
    a, b = QuoteSimulator(seed=11), QuoteSimulator(seed=11)
    line = a.reply_line("ABC", "bob", 1_700_000_000_000)
    assert line == b.reply_line("ABC", "bob", 1_700_000_000_000)
    quote = parse_quote_reply(line.rstrip(b"\n"), "ABC", "bob")
    assert quote.price == simulated_price_cents(11, "ABC", 1_700_000_000_000)
    assert quote.quote_time == 1_700_000_000_000


def test_legacy_latency_is_two_thirds_fast_the_rest_whole_seconds_late_mean_056():
    delays = [legacy_delay_ms(42, n) for n in range(30_000)]
    fast = sum(1 for d in delays if d == 10) / len(delays)
    assert 0.64 < fast < 0.69
    assert {d for d in delays if d != 10} == {1_010, 2_010, 3_010, 4_010}
    assert 0.53 < sum(delays) / len(delays) / 1000 < 0.59


def test_legacy_latency_table_has_mean_056():
    total = sum(weight for weight, _ in LEGACY_LATENCY_TABLE)
    mean_ms = sum(weight * delay for weight, delay in LEGACY_LATENCY_TABLE) / total
    assert mean_ms == pytest.approx(560)


def test_legacy_latency_is_deterministic_for_a_seed():
    seed_9 = [legacy_delay_ms(9, n) for n in range(500)]
    assert seed_9 == [legacy_delay_ms(9, n) for n in range(500)]
    assert seed_9 != [legacy_delay_ms(10, n) for n in range(500)]


def test_simulator_draws_its_nth_delay_from_the_seeded_sequence():
    simulator = QuoteSimulator(seed=4, latency=Latency.parse("legacy"))
    drawn = [simulator.take_delay_ms() for _ in range(50)]
    assert drawn == [legacy_delay_ms(4, n) for n in range(50)]


def test_latency_specs_parse():
    assert Latency.parse("fixed:25") == Latency("fixed", 25)
    assert Latency.parse("legacy") == Latency("legacy")
    assert str(Latency.parse("fixed:0")) == "fixed:0"


@pytest.mark.parametrize(
    "spec", ["", "fixed", "fixed:", "fixed:-1", "fixed:1.5", "slow", "legacy:1"]
)
def test_bad_latency_specs_are_rejected(spec):
    with pytest.raises(ValueError):
        Latency.parse(spec)


def test_the_simulator_listens_with_a_deep_accept_queue():
    # Every request is a connection of its own: a burst must not overflow the kernel's queue
    # (Twisted's default of 50 did when every cached quote expired at once).
    memory = MemoryReactor()
    QuoteSimulator().listen(memory, 0)
    QuoteSimulator().listen(memory, 0, backlog=7)
    assert [server[2] for server in memory.tcpServers] == [LISTEN_BACKLOG, 7]
    assert LISTEN_BACKLOG >= 1024


# -- over TCP -------------------------------------------------------------------------------------


class _OneReply(Protocol):
    def __init__(self, request: bytes, done: Deferred[bytes]) -> None:
        self.request, self.done, self.data = request, done, b""

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: object = None) -> None:
        self.done.callback(self.data)


def exchange(port: int, request: bytes) -> Deferred[bytes]:
    """Send `request` and collect everything until the server closes."""
    done: Deferred[bytes] = Deferred()
    factory = ClientFactory.forProtocol(lambda: _OneReply(request, done))
    reactor.connectTCP("127.0.0.1", port, factory)
    return done


@pytest.mark.usefixtures("trial_tmp_path")
class SimulatorOverTcpTest(TestCase):
    async def test_answers_one_quote_line_then_closes(self):
        simulator, port = listen_simulator(self, seed=5)
        reply = await exchange(port, b"ABC,bob\n")
        assert reply.endswith(b"\n") and reply.count(b"\n") == 1
        quote = parse_quote_reply(reply[:-1], "ABC", "bob")
        assert quote.price == simulated_price_cents(5, "ABC", quote.quote_time)
        assert quote.cryptokey == simulated_cryptokey(5, "ABC", "bob", quote.quote_time)
        assert abs(quote.quote_time - time.time() * 1000) < 60_000
        assert simulator.requests_served == 1

    async def test_accepts_crlf_requests(self):
        _, port = listen_simulator(self)
        reply = await exchange(port, b"XYZ,amy\r\n")
        parse_quote_reply(reply.rstrip(b"\n"), "XYZ", "amy")

    async def test_fixed_latency_delays_the_reply_by_its_ms_on_the_simulators_clock(self):
        fake = FakeClockReactor()
        simulator, port = listen_simulator(self, on=fake, latency=Latency.parse("fixed:150"))
        answered = exchange(port, b"ABC,bob\n")
        # The request was read once its reply, not the idle timeout, is what waits.
        await wait_until(lambda: [c.getTime() for c in fake.getDelayedCalls()] == [0.15])
        fake.advance(0.149)
        assert simulator.requests_served == 0
        fake.advance(0.001)
        assert simulator.requests_served == 1
        quote = parse_quote_reply((await answered)[:-1], "ABC", "bob")
        assert quote.quote_time == 150  # stamped with the simulator's clock

    async def test_prices_file_sets_exact_prices(self):
        prices = self.tmp_path / "prices.json"
        prices.write_text(json.dumps({"ABC": 12345, "Q": 1}))
        _, port = listen_simulator(self, seed=1, prices_file=prices)
        abc = parse_quote_reply((await exchange(port, b"ABC,bob\n"))[:-1], "ABC", "bob")
        q = parse_quote_reply((await exchange(port, b"Q,bob\n"))[:-1], "Q", "bob")
        other = parse_quote_reply((await exchange(port, b"ZZZ,bob\n"))[:-1], "ZZZ", "bob")
        assert (abc.price, q.price) == (12345, 1)
        assert other.price == simulated_price_cents(1, "ZZZ", other.quote_time)

    async def test_prices_file_is_reread_after_it_changes(self):
        prices = self.tmp_path / "prices.json"
        prices.write_text(json.dumps({"ABC": 1000}))
        _, port = listen_simulator(self, prices_file=prices)
        first = parse_quote_reply((await exchange(port, b"ABC,bob\n"))[:-1], "ABC", "bob")
        tmp = prices.with_suffix(".new")
        tmp.write_text(json.dumps({"ABC": 2500}))
        os.replace(tmp, prices)
        second = parse_quote_reply((await exchange(port, b"ABC,bob\n"))[:-1], "ABC", "bob")
        prices.write_text(json.dumps({"ABC": 777}))  # rewritten in place: size changes
        third = parse_quote_reply((await exchange(port, b"ABC,bob\n"))[:-1], "ABC", "bob")
        assert (first.price, second.price, third.price) == (1000, 2500, 777)

    async def test_a_broken_prices_file_keeps_the_last_good_prices(self):
        prices = self.tmp_path / "prices.json"
        prices.write_text(json.dumps({"ABC": 1000}))
        _, port = listen_simulator(self, prices_file=prices)
        await exchange(port, b"ABC,bob\n")
        for broken in ["{not json", json.dumps({"ABC": -5}), json.dumps({"ABC": 1.5}), "[1]"]:
            prices.write_text(broken)
            quote = parse_quote_reply((await exchange(port, b"ABC,bob\n"))[:-1], "ABC", "bob")
            assert quote.price == 1000

    async def test_malformed_requests_get_an_error_line_and_a_close(self):
        _, port = listen_simulator(self)
        for request in [b"garbage\n", b"abc,bob\n", b"ABCD,bob\n", b"ABC,bo b\n", b"ABC,bob,x\n",
                        b"\xff\xfe,bob\n", b",\n", b"X" * 300 + b"\n"]:  # fmt: skip
            reply = await exchange(port, request)
            assert reply.startswith(b"error,") and reply.endswith(b"\n"), request
        # still serving
        parse_quote_reply((await exchange(port, b"ABC,bob\n"))[:-1], "ABC", "bob")

    async def test_a_client_that_leaves_before_the_reply_does_no_harm(self):
        simulator, port = listen_simulator(self, latency=Latency.parse("fixed:100"))
        gone: Deferred[bytes] = Deferred()

        class Leaver(_OneReply):
            def connectionMade(self) -> None:
                self.transport.write(self.request)
                self.transport.loseConnection()

        reactor.connectTCP(
            "127.0.0.1", port, ClientFactory.forProtocol(lambda: Leaver(b"ABC,bob\n", gone))
        )
        assert await gone == b""
        parse_quote_reply((await exchange(port, b"ABC,bob\n"))[:-1], "ABC", "bob")
        assert simulator.requests_served == 1  # the leaver's reply was never produced


# -- the CLI --------------------------------------------------------------------------------------


def _start_cli(*args: str, host: str = "127.0.0.1") -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "server.quotes.simulator", "--port", "0", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = process.stdout.readline()
    m = re.search(rf"listening on {re.escape(host)}:(\d+)", line)
    if m is None:
        process.kill()
        process.wait()
        raise AssertionError(f"no listening line: {line!r} {process.stderr.read()!r}")
    return process, int(m.group(1))


def _ask(port: int, request: bytes, host: str = "127.0.0.1") -> bytes:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return data


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_quotes_and_stops_on_signal(sig, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"ABC": 4321}))
    process, port = _start_cli("--seed", "3", "--latency", "fixed:1", "--prices", str(prices))
    try:
        quote = parse_quote_reply(_ask(port, b"ABC,bob\n")[:-1], "ABC", "bob")
        assert quote.price == 4321
        other = parse_quote_reply(_ask(port, b"XYZ,bob\n")[:-1], "XYZ", "bob")
        assert other.price == simulated_price_cents(3, "XYZ", other.quote_time)
        process.send_signal(sig)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def test_cli_listens_on_the_host_it_is_given():
    process, port = _start_cli("--host", "127.0.0.2", host="127.0.0.2")
    try:
        assert parse_quote_reply(_ask(port, b"ABC,bob\n", "127.0.0.2")[:-1], "ABC", "bob")
        with pytest.raises(ConnectionRefusedError):
            _ask(port, b"ABC,bob\n", "127.0.0.1")
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
        process.stderr.close()


def test_cli_rejects_a_bad_latency():
    result = subprocess.run(
        [sys.executable, "-m", "server.quotes.simulator", "--latency", "fast"],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "latency" in result.stderr


def test_cli_reports_a_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = subprocess.run(
            [sys.executable, "-m", "server.quotes.simulator", "--port", port],
            cwd=REPO, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert result.returncode == 1
    assert "cannot listen" in result.stderr
