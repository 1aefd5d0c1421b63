"""Fixtures of the dashboard tests: the real system (one per module), fresh users, waiting on the
app's own state."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC
from pathlib import Path

import pytest

from client_tui.app import DaytradeApp
from client_tui.connection import BACKOFF
from client_tui.screens.dashboard import DashboardScreen
from protocol.client import DaytradeClient
from tests.support.system import RunningSystem

#: Fixed prices (cents) of the live tests' quote simulator.
PRICES = {"ABC": 1234, "DEF": 4567, "XYZ": 500, "QRS": 8800, "TRG": 500}
PASSWORD = "correct horse"
#: How long a test waits for the app to reach a state before failing.
DEADLINE = 20.0

_users = itertools.count(1)


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch) -> Path:
    """Every test keeps its watchlists under its own tmp_path (XDG_DATA_HOME), never in ~."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    return tmp_path / "xdg-data"


@pytest.fixture(scope="module")
def system(tmp_path_factory) -> RunningSystem:
    """One real `daytrade up` for the whole test module (starting one takes about a second)."""
    with RunningSystem(tmp_path_factory.mktemp("tui") / "data", prices=PRICES,
                       quote_latency="fixed:5", sweep_interval=0.5) as running:
        yield running


@pytest.fixture
def user() -> str:
    """A user id no other test uses."""
    return f"trader{next(_users)}"


async def until(pilot, condition: Callable[[], object], what: str = "the condition",
                timeout: float = DEADLINE) -> None:
    """Let the app run until `condition()` holds; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


async def operator(system: RunningSystem, *lines: str) -> list:
    """Send lines as the operator (a second connection); every reply must be ok."""
    async with await DaytradeClient.connect(system.host, system.port) as client:
        assert (await client.auth(system.token)).ok
        replies = [await client.send(line) for line in lines]
    for line, reply in zip(lines, replies):
        assert reply.ok, (line, reply)
    return replies


def notices(app: DaytradeApp) -> list[str]:
    """Every toast the app showed since login (they are kept in the Log view)."""
    return [e.detail for e in app.store.activity if e.kind == "notice"]


@asynccontextmanager
async def dashboard(system: RunningSystem, user: str, export_dir: Path | None = None,
                    cash: str | None = None, setup: tuple[str, ...] = (),
                    watchlist: tuple[str, ...] = (), backoff: tuple[float, ...] = BACKOFF):
    """The app logged in as `user` (signed up by the login); then the operator adds `cash`
    and sends the `setup` lines (an account the operator created could not log in)."""
    app = DaytradeApp(host=system.host, port=system.port, tz=UTC, export_dir=export_dir,
                      tick=0.5, watchlist=watchlist, backoff=backoff)
    async with app.run_test(size=(120, 40)) as pilot:
        outcome = await app.log_in(system.host, system.port, user, PASSWORD)
        assert outcome.ok, outcome
        assert isinstance(app.screen, DashboardScreen)
        lines = (f"ADD,{user},{cash}",) if cash is not None else ()
        if lines + setup:
            await operator(system, *lines, *setup)
            await app.session.refresh_summary()
        try:
            yield app, pilot
        finally:
            await app.connection.close()
