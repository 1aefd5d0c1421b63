"""client_tui.demo and `daytrade tui --demo`: an embedded server, a funded demo account, and
nothing left running afterwards."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC

import pytest

from client_tui.app import DaytradeApp, build_parser
from client_tui.demo import DemoAccount, EmbeddedServer, EmbeddedServerError
from client_tui.screens.dashboard import DashboardScreen
from tests.support.procs import PGRP, live_processes
from tests.tui.conftest import notices, until

pytestmark = pytest.mark.e2e


def running_in_group(pgid: int) -> list[int]:
    return live_processes(PGRP, pgid)


def gone(pgid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while running_in_group(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def test_demo_starts_a_server_funds_the_account_and_shows_the_dashboard():
    with EmbeddedServer() as server:
        pid = server.process.pid
        demo = DemoAccount.for_server(server)
        app = DaytradeApp(host=server.host, port=server.port, demo=demo, tz=UTC, tick=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
            await until(pilot, lambda: app.store.summary.cash == 10_000_00, "the demo cash")
            assert app.store.user == "demo" and app.store.watchlist == list(demo.watchlist)
            await until(pilot, lambda: all(app.store.quotes.latest(s) for s in demo.watchlist),
                        "the watchlist quotes")
            assert any("funded with 10,000.00" in n for n in notices(app))
            await app.connection.close()
        data_dir = server.data_dir
        assert (data_dir / "operator.token").exists()
    # Stopped with its whole process group, temporary data directory included.
    assert gone(pid)
    assert not data_dir.exists()


def test_a_server_that_cannot_start_is_reported_with_its_log():
    server = EmbeddedServer(extra_args=("--shards", "not-a-number"), start_timeout=30)
    with pytest.raises(EmbeddedServerError, match="exited with"):
        server.start()
    assert server.process is None


def test_stop_kills_a_server_that_ignores_sigterm():
    server = EmbeddedServer()
    # Stand-in child that ignores SIGTERM, in its own group like the real one.
    server.process = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
         "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, start_new_session=True)
    server.process.stdout.readline()
    pid = server.process.pid
    server.stop(timeout=0.5)
    assert gone(pid)


def test_tui_arguments():
    args = build_parser().parse_args(["--host", "10.0.0.1", "--port", "4100", "--user", "bob",
                                      "--demo"])
    assert (args.host, args.port, args.user, args.demo) == ("10.0.0.1", 4100, "bob", True)
    defaults = build_parser().parse_args([])
    assert (defaults.host, defaults.port, defaults.user, defaults.demo) == (
        "127.0.0.1", 4000, "", False)

