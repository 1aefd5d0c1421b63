"""Battery item 6, TLS: `daytrade up --tls-cert F --tls-key F` also serves the protocol over TLS
on a port of its own; plaintext on the TLS port (and TLS on the plain port) fails cleanly."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import subprocess
import sys
import time

import pytest

from protocol.client import DaytradeClient
from tests.reliability.figures import p99, record
from tests.support.certs import self_signed_certificate
from tests.support.lines import LineClient
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    """A throwaway self-signed certificate for 127.0.0.1."""
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    return str(cert), str(key)


@pytest.fixture
def system(tmp_path, certificate):
    cert, key = certificate
    with RunningSystem(tmp_path / "data", prices={"ABC": 1000}, extra_args=[
            "--tls-cert", cert, "--tls-key", key, "--tls-port", "0"]) as s:
        line = s.process.stdout.readline()
        m = re.search(r"daytrade TLS listening on ([\d.]+):(\d+)", line)
        assert m, line
        s.tls_port = int(m.group(2))
        yield s


def client_context(cert: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cert)
    context.check_hostname = False  # the certificate names the IP address; the CA check stays
    return context


async def timed_round_trips(client: DaytradeClient, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.monotonic()
        assert (await client.send("DISPLAY_SUMMARY,tess")).ok
        latencies.append(time.monotonic() - started)
    return latencies


def test_the_protocol_works_over_tls_and_sees_the_same_state(system, certificate):
    async def scenario() -> tuple[list[float], list[float]]:
        secure = await DaytradeClient.connect(system.host, system.tls_port,
                                              ssl=client_context(certificate[0]))
        plain = await DaytradeClient.connect(system.host, system.port)
        try:
            assert (await secure.auth(system.token)).ok
            assert (await plain.auth(system.token)).ok
            assert (await secure.send("ADD,tess,12.34")).ok
            summary = (await plain.send("DISPLAY_SUMMARY,tess")).result
            assert summary["cash"] == "12.34"
            return await timed_round_trips(secure, 200), await timed_round_trips(plain, 200)
        finally:
            await secure.close()
            await plain.close()

    over_tls, over_plain = asyncio.run(scenario())
    record("tls", f"200 round trips over TLS p99 {p99(over_tls) * 1000:.1f} ms, plain "
           f"{p99(over_plain) * 1000:.1f} ms; same gateway, same state")


def test_plaintext_on_the_tls_port_fails_cleanly(system):
    started = time.monotonic()
    with socket.create_connection((system.host, system.tls_port), timeout=10) as raw:
        raw.sendall(b"PING\n" * 100)
        received = b""
        try:
            while chunk := raw.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
    closed_after = time.monotonic() - started
    assert b'"pong"' not in received  # nothing of the protocol leaks over a failed handshake
    with LineClient(system.host, system.port) as conn:  # and the server is unharmed
        assert conn.ask("PING")["ok"]
    record("tls/plaintext", f"plaintext on the TLS port: closed after {closed_after:.2f} s, no "
           f"reply; the server unharmed")


def test_tls_on_the_plain_port_fails_the_handshake(system, certificate):
    context = client_context(certificate[0])
    with socket.create_connection((system.host, system.port), timeout=10) as raw, \
            pytest.raises((ssl.SSLError, ConnectionError)):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    with LineClient(system.host, system.port) as conn:
        assert conn.ask("PING")["ok"]


def test_a_certificate_without_its_key_is_refused_at_start(tmp_path, certificate):
    result = subprocess.run([sys.executable, "-m", "daytrade", "up", "--port", "0",
                             "--data-dir", str(tmp_path / "data"), "--tls-cert", certificate[0]],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--tls-key" in result.stderr
