"""client_tui.connection: one connection that logs in, reports, and reconnects with back-off.

Driven through RecordedClient (the DaytradeClient surface) so that failures can be staged; the
Pilot tests run the same Connection against the real server.
"""

from __future__ import annotations

import asyncio

import pytest
from textual.app import App

from client_tui.connection import Connection, ConnState, masked
from tests.tui.fakes import FrozenClock, RecordedServer

REPLIES = {
    "LOGIN,alice,correct horse": {"txn": None, "cmd": "LOGIN", "ok": True,
                                  "result": {"user": "alice", "signed_up": False}},
    "LOGIN,alice,wrong password": {"txn": None, "cmd": "LOGIN", "ok": False,
                                   "error": {"code": "unauthorized",
                                             "message": "wrong user id or password"}},
    "QUOTE,alice,ABC": {"txn": 2, "cmd": "QUOTE", "ok": True,
                        "result": {"symbol": "ABC", "price": "12.34", "quote_time": 1,
                                   "cryptokey": "k", "age_ms": 0}},
    "BUY,alice,ABC,1.00": {"txn": 3, "cmd": "BUY", "ok": False,
                           "error": {"code": "insufficient_funds", "message": "cash 0.00"}},
}


class Probe(App):
    """Collects what the connection posts."""

    def __init__(self) -> None:
        super().__init__()
        self.states: list[tuple[ConnState, str]] = []
        self.logged: list = []
        self.events: list = []
        self.restored = 0
        self.given_up = False

    def on_connection_state_changed(self, message: Connection.StateChanged) -> None:
        self.states.append((message.state, message.detail))
        self.given_up = self.given_up or message.given_up

    def on_connection_logged(self, message: Connection.Logged) -> None:
        self.logged.append(message.outcome)

    def on_connection_event_pushed(self, message: Connection.EventPushed) -> None:
        self.events.append(message.event)

    def on_connection_restored(self, message: Connection.Restored) -> None:
        self.restored += 1


@pytest.fixture
def clock():
    return FrozenClock(1_000_000)


@pytest.fixture
def server(clock):
    return RecordedServer(dict(REPLIES), clock)


async def until(pilot, condition, timeout=10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await pilot.pause(0.02)


async def test_open_logs_in_and_reports_connected(server, clock):
    app = Probe()
    async with app.run_test() as pilot:
        conn = Connection(app, connector=server, clock=clock)
        outcome = await conn.open("h", 1, "alice", "correct horse")
        await pilot.pause()
        assert outcome.ok and conn.state == ConnState.CONNECTED and conn.user == "alice"
        assert [s for s, _ in app.states][:2] == [ConnState.CONNECTING, ConnState.CONNECTED]
        await conn.close()


def test_passwords_never_reach_the_log():
    assert masked("LOGIN,alice,correct horse") == "LOGIN,alice,********"
    assert masked("PASSWD,alice,a,b,c") == "PASSWD,alice,********"
    assert masked("BUY,alice,ABC,1") == "BUY,alice,ABC,1"


async def test_the_logged_login_hides_the_password(server, clock):
    app = Probe()
    async with app.run_test() as pilot:
        conn = Connection(app, connector=server, clock=clock)
        await conn.open("h", 1, "alice", "correct horse")
        await pilot.pause()
        assert app.logged[0].line == "LOGIN,alice,********" and app.logged[0].ok
        await conn.close()


async def test_a_refused_connection_is_an_outcome_with_its_reason(server, clock):
    server.refuse = 1
    app = Probe()
    async with app.run_test() as pilot:
        conn = Connection(app, connector=server, clock=clock)
        outcome = await conn.open("h", 1, "alice", "correct horse")
        await pilot.pause()
        assert (outcome.ok, outcome.code) == (False, "connect_failed")
        assert "Connection refused" in outcome.message
        assert conn.state == ConnState.OFFLINE and app.states[-1][0] == ConnState.OFFLINE


async def test_a_refused_login_closes_the_connection_and_says_why(server, clock):
    app = Probe()
    async with app.run_test():
        conn = Connection(app, connector=server, clock=clock)
        outcome = await conn.open("h", 1, "alice", "wrong password")
        assert outcome.error == "unauthorized: wrong user id or password"
        assert server.clients[0].closed and conn.state == ConnState.OFFLINE


async def test_a_request_while_offline_is_not_sent(server, clock):
    app = Probe()
    async with app.run_test():
        conn = Connection(app, connector=server, clock=clock)
        outcome = await conn.request("QUOTE,alice,ABC")
        assert (outcome.ok, outcome.code) == (False, "offline")
        assert "nothing was sent" in outcome.message and server.clients == []


async def test_server_errors_come_back_as_outcomes_with_code_and_message(server, clock):
    app = Probe()
    async with app.run_test():
        conn = Connection(app, connector=server, clock=clock)
        await conn.open("h", 1, "alice", "correct horse")
        outcome = await conn.request("BUY,alice,ABC,1.00")
        assert outcome.error == "insufficient_funds: cash 0.00" and outcome.txn == 3
        await conn.close()


async def test_ping_measures_the_servers_clock_offset(server, clock):
    app = Probe()
    async with app.run_test():
        conn = Connection(app, connector=server, clock=clock)
        original = server.__call__

        async def ahead(host, port, on_event):
            client = await original(host, port, on_event)
            client.pong_offset_ms = 2_500
            return client

        conn._connector = ahead
        await conn.open("h", 1, "alice", "correct horse")
        assert conn.server_offset_ms == 2_500
        assert conn.server_now_ms() == clock.now_ms() + 2_500
        await conn.close()


async def test_a_request_cut_off_by_a_dropped_connection_says_it_may_have_applied(server,
                                                                                 clock):
    app = Probe()
    async with app.run_test():
        conn = Connection(app, connector=server, clock=clock, backoff=(0.01,))
        await conn.open("h", 1, "alice", "correct horse")
        server.clients[0].hold.add("BUY,alice,ABC,1.00")
        pending = asyncio.ensure_future(conn.request("BUY,alice,ABC,1.00"))
        await asyncio.sleep(0)
        await server.clients[0].close()
        outcome = await pending
        assert outcome.code == "connection_lost"
        assert "may or may not have applied" in outcome.message
        await conn.close()


async def test_a_dropped_connection_reconnects_with_backoff_and_logs_in_again(server, clock):
    app = Probe()
    async with app.run_test() as pilot:
        conn = Connection(app, connector=server, clock=clock, backoff=(0.01, 0.02))
        await conn.open("h", 1, "alice", "correct horse")
        server.refuse = 2
        await server.clients[0].close()
        await until(pilot, lambda: app.restored == 1)
        assert conn.state == ConnState.CONNECTED and len(server.clients) == 2
        reconnecting = [d for s, d in app.states if s == ConnState.RECONNECTING]
        assert len(reconnecting) == 3  # the first try, then two refusals
        assert "Connection refused" in reconnecting[-1] and "attempt 3" in reconnecting[-1]
        assert server.clients[1].sent[0] == "LOGIN,alice,correct horse"
        outcome = await conn.request("QUOTE,alice,ABC")
        assert outcome.ok
        await conn.close()


async def test_a_login_refused_on_reconnect_stops_retrying_and_goes_offline(server, clock):
    app = Probe()
    async with app.run_test() as pilot:
        conn = Connection(app, connector=server, clock=clock, backoff=(0.01,))
        await conn.open("h", 1, "alice", "correct horse")
        # e.g. the password was changed meanwhile
        server.replies["LOGIN,alice,correct horse"] = REPLIES["LOGIN,alice,wrong password"]
        await server.clients[0].close()
        await until(pilot, lambda: conn.state == ConnState.OFFLINE)
        assert "login refused on reconnect: unauthorized" in conn.detail
        await until(pilot, lambda: app.given_up)
        await pilot.pause(0.1)
        assert len(server.clients) == 2 and app.restored == 0


async def test_pushed_events_are_posted(server, clock):
    app = Probe()
    async with app.run_test() as pilot:
        conn = Connection(app, connector=server, clock=clock)
        await conn.open("h", 1, "alice", "correct horse")
        server.clients[0].push("trigger_fired", symbol="XYZ", shares=1)
        await until(pilot, lambda: app.events)
        assert app.events[0].event == "trigger_fired" and app.events[0].data["shares"] == 1
        await conn.close()


async def test_a_connection_that_stops_answering_pings_is_replaced(server, clock):
    app = Probe()
    async with app.run_test() as pilot:
        conn = Connection(app, connector=server, clock=clock, ping_every=0.05, ping_timeout=0.1,
                          backoff=(0.01,))
        await conn.open("h", 1, "alice", "correct horse")
        # PINGs go unanswered: as if the server went away without closing the connection.
        first = server.clients[0]
        first.hold.add("PING")
        await until(pilot, lambda: app.restored == 1)
        assert first.closed and conn.client is server.clients[1]
        await conn.close()
