"""Dashboard behaviour that needs the server to do something on cue (expire an order, settle a
different one): the Connection is fed recorded replies (fakes.RecordedClient) and a frozen clock."""

from __future__ import annotations

import copy
from datetime import UTC

from textual.command import CommandList

from client_tui.app import DaytradeApp
from client_tui.screens.dashboard import DashboardScreen
from client_tui.screens.help import HelpScreen
from client_tui.screens.login import LoginScreen
from client_tui.screens.order_ticket import OrderTicket
from client_tui.widgets.table import TradeTable
from tests.tui.conftest import notices, until
from tests.tui.fakes import FrozenClock, RecordedServer, load_recording

RECORDING = load_recording()


def recorded(replies: dict | None = None) -> tuple[DaytradeApp, RecordedServer]:
    clock = FrozenClock(RECORDING["now_ms"])
    server = RecordedServer(replies or copy.deepcopy(RECORDING["replies"]), clock)
    app = DaytradeApp(connector=server, clock=clock, tz=UTC, watchlist=("ABC", "DEF"),
                      tick=1.0)
    return app, server


async def log_in(app: DaytradeApp) -> None:
    outcome = await app.log_in("127.0.0.1", 4000, RECORDING["user"], RECORDING["password"])
    assert outcome.ok


async def placed_ticket(pilot) -> OrderTicket:
    await pilot.press("b", *"100", "enter")  # the watchlist's first row: ABC
    await until(pilot, lambda: isinstance(pilot.app.screen, OrderTicket)
                and pilot.app.screen.state == "pending", "the pending order")
    return pilot.app.screen


async def test_the_ticket_closes_with_a_toast_when_the_server_expires_its_order():
    app, server = recorded()
    async with app.run_test(size=(120, 40)) as pilot:
        await log_in(app)
        ticket = await placed_ticket(pilot)
        assert ticket.txn == 20
        server.clients[-1].push("pending_expired", user="alice", side="buy", txn=20,
                                symbol="ABC", shares=8, price="12.34", cash="8292.48")
        await until(pilot, lambda: not isinstance(app.screen, OrderTicket), "the ticket closing")
        assert notices(app)[-1] == ("BUY #20 expired: 8 ABC @ 12.34 released (cash 8,292.48)")
        assert sum("expired" in n for n in notices(app)) == 1  # one toast, not two


async def test_an_expiry_of_another_order_leaves_the_ticket_open_and_toasts():
    app, server = recorded()
    async with app.run_test(size=(120, 40)) as pilot:
        await log_in(app)
        ticket = await placed_ticket(pilot)
        server.clients[-1].push("pending_expired", user="alice", side="buy", txn=13,
                                symbol="XYZ", shares=10, price="5.00", cash="8342.48")
        await until(pilot, lambda: any("Pending BUY #13 expired" in n for n in notices(app)))
        assert app.screen is ticket and ticket.state == "pending"


async def test_a_commit_that_settles_a_different_order_keeps_the_ticket_open_and_warns():
    # The recorded COMMIT_BUY settled 10 DEF: not this ticket's 8 ABC.
    app, _ = recorded()
    async with app.run_test(size=(120, 40)) as pilot:
        await log_in(app)
        ticket = await placed_ticket(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: any("settled a newer order" in n for n in notices(app)))
        assert app.screen is ticket and ticket.state == "pending"


async def test_the_ticket_refuses_to_commit_when_a_newer_order_of_its_side_is_pending():
    replies = copy.deepcopy(RECORDING["replies"])
    summary = replies["DISPLAY_SUMMARY,alice"]["result"]
    newer = replies["BUY,alice,ABC,100.00"]["result"]["expires_at"] + 5_000
    summary["pending_buys"].insert(0, {"txn": 21, "symbol": "QRS", "shares": 1,
                                       "price": "88.00", "expires_at": newer})
    app, server = recorded(replies)
    async with app.run_test(size=(120, 40)) as pilot:
        await log_in(app)
        ticket = await placed_ticket(pilot)
        await pilot.press("enter")
        error = ticket.query_one("#ticket-error")
        await until(pilot, lambda: "a newer BUY #21 is pending" in str(error.content))
        assert not any(line.startswith("COMMIT_BUY") for line in server.clients[-1].sent)


async def test_a_failed_request_shows_its_code_and_message_in_the_status_line():
    app, server = recorded()
    async with app.run_test(size=(120, 40)) as pilot:
        await log_in(app)
        await pilot.press("ctrl+p", *"cancel trigger buy ABC")
        await until(pilot, lambda: CommandList in {type(w) for w in app.screen.query("*")})
        await pilot.press("enter")
        await until(pilot, lambda: "CANCEL_SET_BUY → internal" in str(app.dashboard.status
                                                                         .content))
        assert any("CANCEL_SET_BUY failed — internal: no recorded reply" in n
                   for n in notices(app))


async def test_keys_switch_views_and_move_the_cursor():
    app, _ = recorded()
    async with app.run_test(size=(120, 40)) as pilot:
        await log_in(app)
        dashboard: DashboardScreen = app.screen
        for key, tab in zip("654321", ["log", "history", "triggers", "orders", "positions",
                                       "watchlist"]):
            await pilot.press(key)
            assert dashboard.active_tab == tab
            assert app.focused is dashboard.query_one(f"#{tab}-view").query_one(TradeTable)
        await until(pilot, lambda: app.focused.row_count == 2, "the watchlist rows")
        await pilot.press("j")
        assert (app.focused.cursor_row, dashboard.selected_symbol()) == (1, "DEF")
        await pilot.press("k")
        assert (app.focused.cursor_row, dashboard.selected_symbol()) == (0, "ABC")


async def test_help_overlay_opens_with_question_mark_and_closes_with_escape():
    app, _ = recorded()
    async with app.run_test(size=(120, 40)) as pilot:
        await log_in(app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_the_palette_shows_the_usage_of_a_command_typed_wrong():
    app, _ = recorded()
    async with app.run_test(size=(120, 40)) as pilot:
        await log_in(app)
        await pilot.press("ctrl+p", *"buy ABC")
        lists = lambda: [str(o.prompt) for cl in app.screen.query(CommandList)  # noqa: E731
                         for o in cl.options]
        await until(pilot, lambda: any("usage: buy SYM AMOUNT" in p for p in lists()))


async def test_mouse_clicks_switch_tabs_and_press_buttons():
    app, _ = recorded()
    async with app.run_test(size=(120, 40)) as pilot:
        await log_in(app)
        await pilot.click("#tabs Tab#--content-tab-orders")
        assert app.screen.active_tab == "orders"
        await pilot.press("1")
        await pilot.click("#watch-buy")
        await until(pilot, lambda: isinstance(app.screen, OrderTicket), "the ticket")
        assert app.screen.query_one("#ticket-symbol").value == "ABC"


async def test_a_login_refused_on_reconnect_returns_to_the_login_screen_saying_why():
    app, server = recorded()
    app.connection.backoff = (0.01,)
    async with app.run_test(size=(120, 40)) as pilot:
        await log_in(app)
        await pilot.press("b")  # a dialog open at the time
        await until(pilot, lambda: isinstance(app.screen, OrderTicket), "the ticket")
        server.replies[f"LOGIN,alice,{RECORDING['password']}"] = {
            "txn": None, "cmd": "LOGIN", "ok": False,
            "error": {"code": "locked", "message": "too many failed logins; try in 15 min"}}
        await server.clients[-1].close()
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen")
        status = str(app.screen.query_one("#login-status").content)
        assert status == ("Disconnected — login refused on reconnect: locked: too many failed "
                          "logins; try in 15 min. Log in again.")
        assert not app.logged_in
