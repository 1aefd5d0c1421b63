"""The dashboard loses its server and gets it back: reconnecting with back-off, every failure shown,
logged in again on the same port, state as the server kept it."""

from __future__ import annotations

import pytest

from client_tui.connection import ConnState
from client_tui.screens.funds import AddFundsDialog
from client_tui.widgets.account_header import AccountHeader
from tests.support.system import RunningSystem
from tests.tui.conftest import PRICES, dashboard, notices, until

pytestmark = pytest.mark.e2e


async def test_reconnects_after_the_server_restarts_and_shows_every_failure(tmp_path, user):
    with RunningSystem(tmp_path / "data", prices=PRICES) as first:
        port = first.port
        async with dashboard(first, user, cash="10.00", backoff=(0.2, 0.5, 1.0)) as (app, pilot):
            first.stop()
            await until(pilot, lambda: app.link.state == ConnState.RECONNECTING, "reconnecting")
            header = app.dashboard.query_one(AccountHeader)
            await until(pilot, lambda: "reconnecting" in str(header.content), "the badge")
            assert "reconnecting:" in str(app.dashboard.status.content)

            # A change tried meanwhile fails visibly, with nothing sent.
            await pilot.press("a", *"5", "enter")
            error = app.screen.query_one("#funds-error")
            await until(pilot, lambda: "offline" in str(error.content), "the offline error")
            assert "nothing was sent" in str(error.content)
            await pilot.press("escape")
            assert not isinstance(app.screen, AddFundsDialog)

            second = RunningSystem(tmp_path / "data", prices=PRICES,
                                   extra_args=["--port", str(port)]).start()
            try:
                await until(pilot, lambda: app.link.state == ConnState.CONNECTED,
                            "the reconnection", timeout=40)
                await until(pilot, lambda: "Reconnected and logged in again" in notices(app))
                await until(pilot, lambda: "connected" in str(header.content), "the badge")
                await pilot.press("a", *"5", "enter")
                await until(pilot, lambda: app.store.summary.cash == 1500, "the ADD")
            finally:
                second.stop()
        states = [e.request for e in app.store.activity if e.kind == "connection"]
        assert states[-3:] == ["reconnecting", "connected", "offline"]  # offline: we closed
        failures = [e for e in app.store.activity
                    if e.kind == "error" and e.code == "connect_failed"]
        assert failures and "refused" in failures[0].detail.lower()
