"""Fixtures of the reliability battery: the size to run at, free ports, and the figures summary."""

from __future__ import annotations

import socket

import pytest

from tests.reliability import figures
from tests.reliability.sizes import CI, SOAK, Size

pytestmark = pytest.mark.e2e


@pytest.fixture(params=[pytest.param(CI, id="ci"),
                        pytest.param(SOAK, id="soak", marks=pytest.mark.soak)])
def size(request: pytest.FixtureRequest) -> Size:
    """CI size by default; the soak size only under `pytest -m soak` (deselected otherwise)."""
    return request.param


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    if figures.RECORDED:
        terminalreporter.section("reliability figures")
        for item, text in figures.RECORDED:
            terminalreporter.write_line(f"{item}: {text}")
