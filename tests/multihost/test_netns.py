"""The separate-hosts fixture itself: hosts talk over the bridge, a pulled cable cuts one off,
nothing is left behind, and nothing of it is in the machine's own namespace."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from bench import netns
from bench.hosts import start_quotes
from server.quotes.legacy_client import parse_quote_reply

pytestmark = pytest.mark.multihost


def ask_quote(address: str, timeout: float = 5.0) -> int:
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(b"ABC,bob\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return parse_quote_reply(data.rstrip(b"\n"), "ABC", "bob").price


@pytest.fixture
def quotes(network: netns.Network, tmp_path: Path) -> str:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"ABC": 1234}))
    return start_quotes(network.add_host("quotes"), prices, tmp_path / "logs")


def test_a_host_reaches_a_server_on_another_host_over_the_bridge(network, quotes):
    client = network.add_host("client")
    assert client.run(lambda: ask_quote(quotes)) == 1234


def test_a_pulled_cable_cuts_a_host_off_until_it_is_plugged_back(network, quotes):
    client = network.add_host("client")
    network.hosts["quotes"].set_link(up=False)
    with pytest.raises(OSError):
        client.run(lambda: ask_quote(quotes, timeout=1.0))
    network.hosts["quotes"].set_link(up=True)
    assert client.run(lambda: ask_quote(quotes)) == 1234


def test_the_hosts_addresses_exist_only_inside_their_namespaces(network, quotes):
    own = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, timeout=30).stdout
    assert netns.SUBNET not in own
    inside = subprocess.run(["ip", "-n", network.hosts["quotes"].namespace, "-o", "addr"],
                            capture_output=True, text=True, timeout=30).stdout
    assert f"{netns.SUBNET}.10/24" in inside


def test_closing_the_network_ends_its_processes_and_deletes_its_namespaces(tmp_path):
    try:
        netns.check_available()
    except netns.NamespacesUnavailable as exc:
        pytest.skip(f"separate hosts need network namespaces: {exc}")
    network = netns.Network()
    try:
        prices = tmp_path / "prices.json"
        prices.write_text("{}")
        start_quotes(network.add_host("quotes"), prices, tmp_path / "logs")
        process = network.processes[0]
    finally:
        network.close()
    assert process.poll() is not None
    assert not [n for n in netns.existing_namespaces() if n.startswith(network.tag + "-")]


def mac_of(host: netns.Host) -> str:
    out = subprocess.run(["ip", "-j", "-n", host.namespace, "link", "show", "eth0"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return json.loads(out)[0]["address"]


def test_a_replaced_host_keeps_the_dead_ones_address_and_mac_move_after_move(network, tmp_path):
    client = network.add_host("client")
    host = network.add_host("quotes")
    address, mac = host.address, mac_of(host)
    for move in range(3):
        host = network.replace_host(host.name, f"quotes{move}")
        assert (host.address, mac_of(host)) == (address, mac)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"ABC": 1234}))
    served = start_quotes(host, prices, tmp_path / "logs")
    assert client.run(lambda: ask_quote(served)) == 1234
