"""Issue 14, the dashboard items: what a new user meets in the first hour, at 80x24 and 120x40.

The Connection is fed recorded replies (fakes.RecordedServer) and the clock is frozen; every test
waits on the app's own state (never on a fixed sleep) and checks what is on screen from the
rendered lines, so "visible" means drawn, not merely mounted.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC
from pathlib import Path

import pytest
from textual import events
from textual.command import CommandList
from textual.widgets import Input

from client_tui.app import DaytradeApp
from client_tui.screens.dashboard import DashboardScreen
from client_tui.screens.funds import AddFundsDialog
from client_tui.screens.help import KEYS, HelpScreen
from client_tui.screens.login import LoginScreen
from client_tui.screens.order_ticket import OrderTicket
from client_tui.screens.trigger import TriggerDialog
from client_tui.widgets.status_line import StatusLine
from client_tui.widgets.table import TradeTable
from tests.tui.conftest import notices, until
from tests.tui.fakes import FrozenClock, RecordedServer, load_recording

RECORDING = load_recording()
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
WRONG = "not the password"


def recorded(tmp_path: Path, watchlist: tuple[str, ...] = ("ABC", "DEF"), tick: float = 1.0,
             user: str = "") -> tuple[DaytradeApp, RecordedServer]:
    replies = copy.deepcopy(RECORDING["replies"])
    replies[f"LOGIN,alice,{WRONG}"] = {
        "txn": None, "cmd": "LOGIN", "ok": False,
        "error": {"code": "unauthorized", "message": "wrong user id or password"}}
    clock = FrozenClock(RECORDING["now_ms"])
    server = RecordedServer(replies, clock)
    app = DaytradeApp(connector=server, clock=clock, tz=UTC, watchlist=watchlist, tick=tick,
                      data_dir=tmp_path / "data", user=user)
    return app, server


async def log_in(app: DaytradeApp) -> None:
    outcome = await app.log_in("127.0.0.1", 4000, RECORDING["user"], RECORDING["password"])
    assert outcome.ok


def screen_text(app: DaytradeApp) -> str:
    """What the terminal shows now, one line per row."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def sent(server: RecordedServer) -> list[str]:
    return [line for client in server.clients for line in client.sent if line != "PING"]


# --- 4: the login screen at 80x24 -------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_a_wrong_password_shows_its_error_and_the_button_without_scrolling(tmp_path, size):
    app, _ = recorded(tmp_path, user="alice")
    async with app.run_test(size=size) as pilot:
        assert isinstance(app.screen, LoginScreen)
        await pilot.press(*WRONG, "enter")
        status = app.screen.query_one("#login-status")
        await until(pilot, lambda: "unauthorized" in str(status.content), "the error")
        await pilot.pause()
        shown = screen_text(app)
        assert "Login failed — unauthorized: wrong user id or password" in shown
        assert "Log in / sign up" in shown
        box = app.screen.query_one("#login-box")
        assert box.scroll_y == 0  # nothing had to scroll to show them
        for widget_id in ("#login-status", "#login-submit", "#login-password"):
            region = app.screen.query_one(widget_id).region
            assert region.height and region.bottom <= size[1] - 1, widget_id  # above the footer


# --- 7: the BUY ticket's preview follows the server's rule -------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_a_buy_beyond_cash_warns_disables_submit_and_sends_nothing(tmp_path, size):
    app, server = recorded(tmp_path)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await pilot.press("b", *"99999")
        ticket = app.screen
        assert isinstance(ticket, OrderTicket)
        estimate = ticket.query_one("#ticket-estimate")
        await until(pilot, lambda: "needs $99,999.00, cash $8,292.48" in str(estimate.content))
        await pilot.pause()
        shown = screen_text(app)
        assert "needs $99,999.00, cash $8,292.48" in shown
        assert "insufficient_funds: a BUY holds the whole amount" in shown
        assert "cash after" not in shown
        assert ticket.query_one("#ticket-go").disabled
        await pilot.press("enter")
        error = ticket.query_one("#ticket-error")
        await until(pilot, lambda: "Not placed — insufficient_funds" in str(error.content))
        assert not any(line.startswith("BUY,") for line in sent(server))
        assert ticket.state == "entry"


@pytest.mark.parametrize("size", SIZES)
async def test_a_buy_within_cash_shows_shares_cost_and_cash_after(tmp_path, size):
    app, _ = recorded(tmp_path)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await pilot.press("b", *"100")
        estimate = app.screen.query_one("#ticket-estimate")
        await until(pilot, lambda: "8 shares × 12.34 = 98.72 cost" in str(estimate.content))
        assert "needs $100.00, cash $8,292.48 · cash after 8,193.76" in str(estimate.content)
        assert not app.screen.query_one("#ticket-go").disabled


# --- 8: placeholders are hints; stale errors go -----------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_placeholders_read_as_hints_and_a_valid_entry_clears_the_error(tmp_path, size):
    app, _ = recorded(tmp_path)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AddFundsDialog), "the dialog")
        amount = app.screen.query_one("#funds-amount", Input)
        assert amount.placeholder == "amount in $, e.g. 1000.00"
        await pilot.press("enter")  # an empty entry
        error = app.screen.query_one("#funds-error")
        await until(pilot, lambda: "is not an amount" in str(error.content), "the error")
        await pilot.press(*"12")
        await until(pilot, lambda: str(error.content) == "", "the stale error gone")
        await pilot.press("escape", "b")
        await until(pilot, lambda: isinstance(app.screen, OrderTicket), "the ticket")
        assert app.screen.query_one("#ticket-amount", Input).placeholder == (
            "amount in $, e.g. 100.00")
        await pilot.press("escape", "t")
        await until(pilot, lambda: isinstance(app.screen, TriggerDialog), "the trigger dialog")
        placeholders = [app.screen.query_one(f"#trigger-{f}", Input).placeholder
                        for f in ("symbol", "amount", "price")]
        assert placeholders == ["e.g. ABC", "in $, e.g. 500.00", "price, e.g. 12.50"]


@pytest.mark.parametrize("size", SIZES)
async def test_a_ticket_error_leaves_when_the_entry_changes(tmp_path, size):
    app, _ = recorded(tmp_path)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await pilot.press("b", "enter")  # no amount
        error = app.screen.query_one("#ticket-error")
        await until(pilot, lambda: "enter an amount" in str(error.content), "the error")
        await pilot.press("1")
        await until(pilot, lambda: str(error.content) == "", "the stale error gone")


# --- 10: 80x24 keeps P&L, the whole help, the footer's labels ---------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_positions_keep_their_pnl_columns(tmp_path, size):
    app, _ = recorded(tmp_path)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await pilot.press("2")
        table = app.dashboard.query_one("#positions-table", TradeTable)
        await until(pilot, lambda: table.row_count >= 5, "the rows")
        await pilot.pause()
        header = next(line for line in screen_text(app).splitlines() if "Symbol" in line)
        assert "P&L %" in header and ("Unrealised P&L" in header or " P&L " in header)
        assert max(c.width + 2 * table.cell_padding for c in table.columns.values()) < size[0]
        assert sum(c.width + 2 * table.cell_padding for c in table.columns.values()) <= size[0]


@pytest.mark.parametrize("size", SIZES)
async def test_the_help_overlay_shows_every_key(tmp_path, size):
    app, _ = recorded(tmp_path)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.pause()
        shown = screen_text(app)
        for key, what in KEYS:
            assert key in shown and what.split()[0] in shown, key
        assert "The mouse works too." in shown


@pytest.mark.parametrize("size", SIZES)
async def test_the_footer_keeps_the_labels_of_the_trading_keys_on_every_tab(tmp_path, size):
    app, _ = recorded(tmp_path)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        for tab, own in (("1", "x Remove"), ("2", ""), ("3", "x Cancel"), ("4", "e Edit"),
                         ("5", "e Export CSV"), ("6", "")):
            await pilot.press(tab)
            await pilot.pause()
            footer = screen_text(app).splitlines()[-1]
            for label in (own, "b Buy", "s Sell", "t Trigger", "a Funds", "/ Watch",
                          "r Refresh", "? Help", "q Quit"):
                assert label in footer, (tab, label, footer)


# --- 11: the watchlist is kept per user, with what the user owns -------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_the_watchlist_is_remembered_and_owned_symbols_are_on_it(tmp_path, size):
    path = tmp_path / "data" / "watchlist-alice.json"
    app, _ = recorded(tmp_path, watchlist=())
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        assert app.store.watchlist == ["ABC", "DEF"]  # owned: 63 ABC, 8 DEF
        await pilot.press("slash", *"qrs", "enter")
        await until(pilot, lambda: "QRS" in app.store.watchlist, "QRS watched")
        await until(pilot, lambda: path.exists() and "QRS" in path.read_text(), "the file")
        await pilot.press("x")  # the highlighted row, ABC: owned, so it stays
        await until(pilot, lambda: any("You own 73 shares of ABC" in n for n in notices(app)))
        assert "ABC" in app.store.watchlist
    assert json.loads(path.read_text())["symbols"] == ["ABC", "DEF", "QRS"]

    again, _ = recorded(tmp_path, watchlist=())
    async with again.run_test(size=size) as pilot:
        await log_in(again)
        assert again.store.watchlist == ["ABC", "DEF", "QRS"]
        table = again.dashboard.query_one("#watch-table", TradeTable)
        await until(pilot, lambda: table.row_count == 3, "three rows")


def test_the_watchlist_lives_in_the_xdg_data_dir(data_home):
    app = DaytradeApp()
    app.store.user = "bob"
    assert app.watchlist_file == data_home / "daytrade" / "watchlist-bob.json"


# --- 12: no polling; r refreshes; events refresh; the Log filter -------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_nothing_is_polled_and_r_refreshes(tmp_path, size):
    app, server = recorded(tmp_path, tick=0.02)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await until(pilot, lambda: all(app.store.quotes.latest(s) for s in ("ABC", "DEF")))
        before = len(sent(server))
        app.clock.advance(10 * 60_000)  # ten minutes: every quote expired, any timer due
        redraws = []
        original = app.dashboard.show
        app.dashboard.show = lambda *a: (redraws.append(1), original(*a))  # type: ignore
        await until(pilot, lambda: len(redraws) >= 25, "25 ticks of the redraw timer")
        assert sent(server)[before:] == []
        await pilot.press("r")
        await until(pilot, lambda: len(sent(server)) > before + 2, "the refresh")
        await until(pilot, lambda: "refreshed" in str(app.dashboard.status.content))
        asked = sent(server)[before:]
        assert asked[0] == "DISPLAY_SUMMARY,alice"
        assert {line for line in asked if line.startswith("QUOTE")} == {
            f"QUOTE,alice,{s}" for s in app.store.symbols_in_play()}


@pytest.mark.parametrize("size", SIZES)
async def test_a_pushed_event_refreshes_the_account(tmp_path, size):
    app, server = recorded(tmp_path)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await until(pilot, lambda: all(app.store.quotes.latest(s) for s in ("ABC", "DEF")))
        before = len(sent(server))
        server.clients[-1].push("trigger_fired", user="alice", txn=30, side="sell",
                                symbol="ABC", shares=10, price="15.00", amount="150.00",
                                cash="12500.00")
        await until(pilot, lambda: "DISPLAY_SUMMARY,alice" in sent(server)[before:])
        assert any("cash 12,500.00" in n for n in notices(app))


@pytest.mark.parametrize("size", SIZES)
async def test_the_log_filters_by_kind_and_text(tmp_path, size):
    app, _ = recorded(tmp_path)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await until(pilot, lambda: all(app.store.quotes.latest(s) for s in ("ABC", "DEF")))
        await pilot.press("6")
        table = app.dashboard.query_one("#log-table", TradeTable)
        await until(pilot, lambda: table.row_count > 3, "the log")
        app.dashboard.query_one("#log-text", Input).value = "quote,alice,def"
        await until(pilot, lambda: table.row_count == 1, "one QUOTE DEF entry")
        assert "QUOTE,alice,DEF" in str(table.get_row_at(0)[2])
        count = app.dashboard.query_one("#log-count")
        assert str(count.content).startswith("1 shown of ")
        app.dashboard.query_one("#log-text", Input).value = ""
        app.dashboard.query_one("#log-kind").value = "connection"
        await until(pilot, lambda: table.row_count and all(
            str(table.get_row_at(i)[1]) == "connection" for i in range(table.row_count)))


# --- 21: the watchlist's chart line ----------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_the_chart_line_neither_wraps_nor_fills_blocks_and_change_is_explained(tmp_path,
                                                                                      size):
    app, _ = recorded(tmp_path)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await until(pilot, lambda: all(app.store.quotes.latest(s) for s in ("ABC", "DEF")))
        app.render_views()
        await pilot.pause()
        chart = app.dashboard.query_one("#watch-chart")
        assert chart.region.height == 1
        shown = screen_text(app)
        chart_line = next(line for line in shown.splitlines() if "ABC since" in line)
        assert "1 quote, low 12.34, high 12.34" in chart_line
        assert "█" not in chart_line and "▄" not in chart_line  # one point: no bar at all
        assert "Change: from the first quote seen this session" in shown


# --- 22: status line, quote age in a pending ticket, toasts -----------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_an_old_error_leaves_the_status_line_at_the_next_action(tmp_path, size):
    app, _ = recorded(tmp_path)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await pilot.press("ctrl+p", *"cancel trigger buy ABC")
        await until(pilot, lambda: CommandList in {type(w) for w in app.screen.query("*")})
        await pilot.press("enter")
        status = app.dashboard.query_one(StatusLine)
        await until(pilot, lambda: status.showing_error, "the error")
        await pilot.press("2")
        assert not status.showing_error
        assert "r refreshes" in str(status.content)


@pytest.mark.parametrize("size", SIZES)
async def test_the_quote_age_keeps_counting_while_the_order_is_pending(tmp_path, size):
    app, _ = recorded(tmp_path, tick=0.05)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await until(pilot, lambda: app.store.quotes.latest("ABC") is not None)
        await pilot.press("b", *"100", "enter")
        ticket = app.screen
        await until(pilot, lambda: isinstance(ticket, OrderTicket) and ticket.state == "pending")
        quote = ticket.query_one("#ticket-quote")
        await until(pilot, lambda: "age 0s" in str(quote.content))
        app.clock.advance(7_000)
        await until(pilot, lambda: "age 7s" in str(quote.content), "the age moving on")


@pytest.mark.parametrize("size", SIZES)
async def test_toasts_do_not_cover_the_status_line_or_the_footer(tmp_path, size):
    app, _ = recorded(tmp_path)
    async with app.run_test(size=size, notifications=True) as pilot:
        await log_in(app)
        app.notify("a toast long enough to matter, with a few words more")
        await until(pilot, lambda: app.screen.query("Toast"), "the toast")
        await pilot.pause()
        toast = app.screen.query_one("Toast").region
        assert toast.height
        for hint in (StatusLine, "Footer", "#account-header", "#tabs Tabs", "#watch-buy",
                     "#watch-remove", "#watch-chart", "#watch-note"):
            assert not toast.overlaps(app.dashboard.query_one(hint).region), hint


# --- 23: the palette's examples -----------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_the_palette_shows_no_help_line_twice(tmp_path, size):
    app, _ = recorded(tmp_path)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await pilot.press("ctrl+p")
        lists = lambda: [o for cl in app.screen.query(CommandList)  # noqa: E731
                         for o in cl.options]
        await until(pilot, lambda: any("buy ABC 100" in str(o.prompt) for o in lists()))
        helps = [str(o.prompt).split("\n", 1)[1] for o in lists() if "\n" in str(o.prompt)]
        assert helps and len(helps) == len(set(helps))


# --- 24: keys typed fast land in the right field ------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_keys_typed_fast_land_in_the_trigger_dialogs_fields(tmp_path, size):
    app, _ = recorded(tmp_path)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await until(pilot, lambda: app.dashboard.selected_symbol() == "ABC", "the ABC row")
        # All queued at once, as a terminal delivers a paste or fast typing: no key waits for
        # the one before it to be handled.
        for key in ["t", *"100", "tab", *"4.50"]:
            char = key if len(key) == 1 else "\t"
            app.post_message(events.Key(key, char))
        dialog = lambda: app.screen  # noqa: E731
        await until(pilot, lambda: isinstance(dialog(), TriggerDialog)
                    and dialog().query_one("#trigger-price", Input).value == "4.50",
                    "the price typed")
        assert dialog().query_one("#trigger-symbol", Input).value == "ABC"
        assert dialog().query_one("#trigger-amount", Input).value == "100"
        assert app.focused is dialog().query_one("#trigger-price")


@pytest.mark.parametrize("size", SIZES)
async def test_a_dialog_key_in_a_text_field_types_a_letter(tmp_path, size):
    app, _ = recorded(tmp_path)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await pilot.press("5")
        await pilot.click("#history-symbol")
        await pilot.press("b", "a", "t", "s")
        assert isinstance(app.screen, DashboardScreen)
        assert app.dashboard.query_one("#history-symbol", Input).value == "bat"


@pytest.mark.parametrize("size", SIZES)
async def test_keys_typed_fast_land_in_the_tickets_amount_and_sell_preview_follows_holdings(
        tmp_path, size):
    app, _ = recorded(tmp_path)
    async with app.run_test(size=size) as pilot:
        await log_in(app)
        await until(pilot, lambda: app.dashboard.selected_symbol() == "ABC", "the ABC row")
        for key in ["s", *"9999"]:
            app.post_message(events.Key(key, key))
        await until(pilot, lambda: isinstance(app.screen, OrderTicket)
                    and app.screen.query_one("#ticket-amount", Input).value == "9999")
        estimate = app.screen.query_one("#ticket-estimate")
        await until(pilot, lambda: "you hold 63 shares free" in str(estimate.content))
        assert "insufficient_shares" in str(app.screen.query_one("#ticket-warning").content)
