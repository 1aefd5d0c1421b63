"""The `network` fixture: hosts in network namespaces, skipped where they cannot be made."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench import netns


@pytest.fixture
def network() -> Iterator[netns.Network]:
    """A fresh private network; every process and namespace it made is gone after the test,
    whether it passed or failed."""
    try:
        netns.check_available()
    except netns.NamespacesUnavailable as exc:
        pytest.skip(f"separate hosts need network namespaces: {exc}")
    netns.remove_leftovers()
    network = netns.Network()
    try:
        yield network
    finally:
        network.close()
