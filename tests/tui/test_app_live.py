"""The dashboard driven with Pilot against the real system (one `daytrade up` for the module).

Each test logs in as a fresh user and waits on the app's own state, never on a fixed sleep.
"""

from __future__ import annotations

import csv
import re

import pytest
from textual.command import CommandList

from client_tui.app import DaytradeApp
from client_tui.screens.dashboard import DashboardScreen
from client_tui.screens.login import LoginScreen
from client_tui.screens.order_ticket import OrderTicket
from client_tui.screens.trigger import TriggerDialog
from client_tui.widgets.account_header import AccountHeader
from client_tui.widgets.table import TradeTable
from protocol.client import DaytradeClient
from tests.tui.conftest import PASSWORD, PRICES, dashboard, notices, until

pytestmark = pytest.mark.e2e


def header(app: DaytradeApp) -> str:
    return str(app.dashboard.query_one(AccountHeader).content)


def cells(app: DaytradeApp, table_id: str, key: str) -> list[str]:
    return [str(c) for c in app.dashboard.query_one(table_id, TradeTable).get_row(key)]


def row_keys(app: DaytradeApp, table_id: str) -> list[str]:
    return [r.key.value for r in app.dashboard.query_one(table_id, TradeTable).ordered_rows]


async def open_ticket(pilot, key: str, symbol: str | None, amount: str) -> OrderTicket:
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, OrderTicket), "the ticket")
    if symbol is not None:
        await pilot.press(*symbol, "tab")
    await pilot.press(*amount)
    return pilot.app.screen


# --- login ------------------------------------------------------------------------------------


async def test_login_screen_signs_up_a_new_user_and_shows_the_dashboard(system, user):
    app = DaytradeApp(host=system.host, port=system.port)
    async with app.run_test(size=(120, 40)) as pilot:
        assert isinstance(app.screen, LoginScreen)
        assert app.screen.query_one("#login-port").value == str(system.port)
        await pilot.click("#login-user")
        await pilot.press(*user, "tab", *PASSWORD, "enter")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
        await until(pilot, lambda: user in header(app) and "connected" in header(app))
        assert any(f"Signed up as {user}" in n for n in notices(app))
        await app.connection.close()


async def test_a_wrong_password_is_shown_plainly_on_the_login_screen(system, user):
    async with await DaytradeClient.connect(system.host, system.port) as client:
        assert (await client.login(user, PASSWORD)).ok
    app = DaytradeApp(host=system.host, port=system.port, user=user)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*"not the password", "enter")
        status = app.screen.query_one("#login-status")
        await until(pilot, lambda: "unauthorized" in str(status.content), "the error")
        assert str(status.content) == (
            "Login failed — unauthorized: wrong user id or password")
        assert isinstance(app.screen, LoginScreen)


async def test_an_unreachable_server_is_shown_with_its_reason(system, user):
    app = DaytradeApp(host="127.0.0.1", port=1, user=user)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*PASSWORD, "enter")
        status = app.screen.query_one("#login-status")
        await until(pilot, lambda: "connect_failed" in str(status.content), "the error")
        assert "refused" in str(status.content).lower()


# --- money and orders -------------------------------------------------------------------------


async def test_add_funds_dialog_adds_to_cash(system, user):
    async with dashboard(system, user) as (app, pilot):
        await pilot.press("a", *"1250.50", "enter")
        await until(pilot, lambda: app.store.summary.cash == 125050, "the new cash")
        await until(pilot, lambda: "Cash 1,250.50" in header(app), "the header")
        assert any("Added 1,250.50" in n for n in notices(app))


async def test_buy_then_commit_moves_cash_into_holdings(system, user):
    async with dashboard(system, user, cash="1000.00") as (app, pilot):
        ticket = await open_ticket(pilot, "b", "ABC", "100")
        await until(pilot, lambda: "8 shares" in str(ticket.query_one("#ticket-estimate")
                                                          .content), "the estimate")
        await pilot.press("enter")
        await until(pilot, lambda: ticket.state == "pending", "the pending BUY")
        assert ticket.query_one("#ticket-progress").display
        assert re.match(r"Expires in (1:00|0:5\d) — Enter commits",
                        str(ticket.query_one("#ticket-hint").content))
        await until(pilot, lambda: "Reserved 98.72" in header(app), "the header")
        await pilot.press("enter")
        await until(pilot, lambda: app.store.summary.holdings.get("ABC") == 8, "the holding")
        assert app.store.summary.cash == 100000 - 9872
        assert not isinstance(app.screen, OrderTicket)
        assert any("Bought 8 ABC @ 12.34" in n for n in notices(app))
        await pilot.press("2")
        await until(pilot, lambda: "ABC" in row_keys(app, "#positions-table"))
        assert cells(app, "#positions-table", "ABC")[:6] == [
            "ABC", "8", "", "12.34", "12.34", "98.72"]
        assert cells(app, "#positions-table", "_total")[5] == "1,000.00"


async def test_buy_then_escape_cancels_and_returns_the_cash(system, user):
    async with dashboard(system, user, cash="500.00") as (app, pilot):
        ticket = await open_ticket(pilot, "b", "DEF", "100")
        await pilot.press("enter")
        await until(pilot, lambda: ticket.state == "pending", "the pending BUY")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, OrderTicket), "the ticket closing")
        await until(pilot, lambda: app.store.summary.cash == 50000 and
                    not app.store.summary.pending_buys, "the cash back")
        assert any("Cancelled BUY of 2 DEF @ 45.67" in n for n in notices(app))


async def test_sell_from_the_highlighted_position(system, user):
    setup = (f"ADD,{user},100.00", f"BUY,{user},ABC,100.00", f"COMMIT_BUY,{user}")
    async with dashboard(system, user, setup=setup) as (app, pilot):
        await pilot.press("2")
        await until(pilot, lambda: "ABC" in row_keys(app, "#positions-table"), "the position")
        ticket = await open_ticket(pilot, "s", None, "25")
        assert ticket.query_one("#ticket-symbol").value == "ABC"
        await pilot.press("enter")
        await until(pilot, lambda: ticket.state == "pending", "the pending SELL")
        await until(pilot, lambda: app.store.summary.pending_sells, "the summary")
        (position,) = app.store.positions()
        assert (position.shares, position.held_shares) == (8, 2)  # 2 held by the pending sell
        await pilot.press("enter")
        await until(pilot, lambda: app.store.summary.holdings.get("ABC") == 6, "the holding")
        assert app.store.summary.cash == 10000 - 9872 + 2 * 1234
        await until(pilot, lambda: cells(app, "#positions-table", "ABC")[1:3] == ["6", ""])
        assert any("Sold 2 ABC @ 12.34 (proceeds 24.68)" in n for n in notices(app))


async def test_a_refused_order_shows_its_error_code_and_message(system, user):
    # 5.00 buys no share of ABC at 12.34: the ticket warns but lets the server decide.
    async with dashboard(system, user, cash="10.00") as (app, pilot):
        ticket = await open_ticket(pilot, "b", "ABC", "5")
        warning = ticket.query_one("#ticket-warning")
        await until(pilot, lambda: "amount_too_small" in str(warning.content), "the warning")
        await pilot.press("enter")
        error = ticket.query_one("#ticket-error")
        await until(pilot, lambda: "amount_too_small" in str(error.content), "the error")
        assert ticket.state == "entry"
        status = str(app.dashboard.status.content)
        assert "BUY → amount_too_small:" in status


async def test_a_buy_beyond_cash_is_not_sent_after_the_cash_is_checked_again(system, user):
    async with dashboard(system, user, cash="10.00") as (app, pilot):
        ticket = await open_ticket(pilot, "b", "ABC", "100")
        estimate = ticket.query_one("#ticket-estimate")
        await until(pilot, lambda: "needs $100.00, cash $10.00" in str(estimate.content))
        assert "insufficient_funds" in str(ticket.query_one("#ticket-warning").content)
        assert ticket.query_one("#ticket-go").disabled
        summaries = sum(e.request.startswith("DISPLAY_SUMMARY") for e in app.store.activity)
        await pilot.press("enter")
        error = ticket.query_one("#ticket-error")
        await until(pilot, lambda: "Not placed — insufficient_funds" in str(error.content))
        assert ticket.state == "entry"
        requests = [e.request for e in app.store.activity]
        assert not any(r.startswith("BUY,") for r in requests)
        assert sum(r.startswith("DISPLAY_SUMMARY") for r in requests) == summaries + 1


async def test_orders_view_commits_only_the_newest_pending_order(system, user):
    setup = (f"ADD,{user},1000.00", f"BUY,{user},ABC,50.00", f"BUY,{user},XYZ,20.00")
    async with dashboard(system, user, setup=setup) as (app, pilot):
        await pilot.press("3")
        await until(pilot, lambda: len(row_keys(app, "#orders-table")) == 2, "two orders")
        newest, older = row_keys(app, "#orders-table")
        assert cells(app, "#orders-table", newest)[2] == "XYZ"
        assert cells(app, "#orders-table", newest)[7] == "⏎ commit · x cancel"
        assert cells(app, "#orders-table", older)[7].startswith("after #")
        await pilot.press("j", "enter")  # the older row: refused on the client
        await until(pilot, lambda: any("Only the newest" in n for n in notices(app)))
        assert len(app.store.summary.pending_buys) == 2
        await pilot.press("k", "enter")
        await until(pilot, lambda: app.store.summary.holdings.get("XYZ") == 4, "the commit")
        await until(pilot, lambda: row_keys(app, "#orders-table") == [older], "one left")
        await pilot.press("x")
        await until(pilot, lambda: not app.store.summary.pending_buys, "the cancel")
        assert app.store.summary.cash == 100000 - 2000


# --- triggers ---------------------------------------------------------------------------------


async def test_set_edit_and_cancel_a_buy_trigger(system, user):
    async with dashboard(system, user, cash="300.00") as (app, pilot):
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, TriggerDialog), "the dialog")
        await pilot.press(*"XYZ", "tab", *"100", "tab", *"4", "enter")
        await until(pilot, lambda: app.store.summary.buy_triggers, "the trigger")
        (trigger,) = app.store.summary.buy_triggers
        assert (trigger.symbol, trigger.reserved, trigger.trigger_price) == ("XYZ", 10000, 400)
        assert app.store.summary.cash == 20000
        await pilot.press("4")
        await until(pilot, lambda: row_keys(app, "#triggers-table") == ["buy:XYZ"])
        await until(pilot, lambda: cells(app, "#triggers-table", "buy:XYZ")[7] == "-20.00%")
        assert cells(app, "#triggers-table", "buy:XYZ")[2:6] == [
            "armed", "100.00", "100.00", "4.00"]
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, TriggerDialog), "the edit dialog")
        price = app.screen.query_one("#trigger-price")
        price.value = "4.50"
        price.focus()
        await pilot.press("enter")
        await until(pilot, lambda: app.store.summary.buy_triggers[0].trigger_price == 450)
        await until(pilot, lambda: cells(app, "#triggers-table", "buy:XYZ")[7] == "-10.00%")
        await pilot.press("x")
        await until(pilot, lambda: not app.store.summary.buy_triggers, "the cancel")
        assert app.store.summary.cash == 30000


async def test_a_trigger_firing_shows_a_toast_and_updates_holdings(system, user):
    # TRG has not been quoted by anyone: its price moves under the trigger before the sweep
    # looks (the server keeps a quote 60 s, so a quoted symbol's move shows only after that).
    system.set_prices({**PRICES, "TRG": 450})
    async with dashboard(system, user, cash="200.00") as (app, pilot):
        await pilot.press("ctrl+p")
        await pilot.press(*"trigger buy TRG 100 @ 5.00")
        await until(pilot, lambda: "→" in palette_text(app), "the palette hit")
        await pilot.press("enter")
        await until(pilot, lambda: any("Buy trigger fired" in n for n in notices(app)),
                    "the trigger_fired toast")
        await until(pilot, lambda: app.store.summary.holdings.get("TRG") == 22, "the shares")
        fired = next(n for n in notices(app) if "fired" in n)
        assert fired == ("Buy trigger fired: bought 22 TRG @ 4.50 for 99.00, 1.00 unspent back;"
                         " cash 101.00")
        assert any(e.kind == "event" and e.request == "trigger_fired"
                   for e in app.store.activity)


def palette_text(app: DaytradeApp) -> str:
    lists = app.screen.query(CommandList)
    return " ".join(str(option.prompt) for cl in lists for option in cl.options)


# --- watchlist, palette, history --------------------------------------------------------------


async def test_watchlist_add_shows_the_quote_and_its_age(system, user):
    async with dashboard(system, user) as (app, pilot):
        await pilot.press("slash", *"def", "enter")
        await until(pilot, lambda: "DEF" in row_keys(app, "#watch-table"), "the row")
        await until(pilot, lambda: cells(app, "#watch-table", "DEF")[1] == "45.67", "the quote")
        age = app.dashboard.query_one("#watch-table", TradeTable).get_row("DEF")[4]
        assert str(age).endswith("s") and int(str(age)[:-1]) < 60
        assert str(age.style) == "green"  # a fresh quote backs an order
        await pilot.press("x")
        await until(pilot, lambda: row_keys(app, "#watch-table") == [], "the removal")


async def test_palette_buy_places_the_order_in_a_ticket(system, user):
    async with dashboard(system, user, cash="100.00") as (app, pilot):
        await pilot.press("ctrl+p", *"buy QRS 90")
        await until(pilot, lambda: "BUY $90.00 of QRS" in palette_text(app), "the hit")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, OrderTicket)
                    and app.screen.state == "pending", "the pending order")
        assert app.store.summary.cash in (100_00 - 88_00, 100_00)  # the summary may lag
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, OrderTicket), "the cancel")
        await until(pilot, lambda: app.store.summary.cash == 100_00, "the cash back")


async def test_history_filters_and_exports_csv(system, user, tmp_path):
    setup = (f"ADD,{user},100.00", f"BUY,{user},ABC,30.00", f"COMMIT_BUY,{user}",
             f"BUY,{user},XYZ,10.00", f"CANCEL_BUY,{user}")
    async with dashboard(system, user, export_dir=tmp_path, setup=setup) as (app, pilot):
        await pilot.press("5")
        await until(pilot, lambda: len(row_keys(app, "#history-table")) == 5, "5 transactions")
        app.screen.query_one("#history-symbol").value = "ABC"
        await until(pilot, lambda: len(row_keys(app, "#history-table")) == 2, "the filter")
        await pilot.press("e")
        await until(pilot, lambda: list(tmp_path.glob("*.csv")), "the CSV file")
        (path,) = tmp_path.glob("*.csv")
        rows = list(csv.DictReader(path.open()))
        assert [(r["kind"], r["symbol"], r["shares"], r["price"], r["cash_delta"])
                for r in rows] == [("buy_commit", "ABC", "2", "12.34", "0.00"),
                                   ("buy_reserve", "ABC", "2", "12.34", "-24.68")]
        assert any(f"Exported 2 transactions to {path}" in n for n in notices(app))


async def test_history_pages_back_through_every_transaction(system, user):
    setup = tuple(f"ADD,{user},1.00" for _ in range(45))
    async with dashboard(system, user, setup=setup) as (app, pilot):
        assert len(app.store.history) == 45 and app.store.history.complete
        requests = [e.request for e in app.store.activity if "DISPLAY_SUMMARY" in e.request]
        assert f"DISPLAY_SUMMARY,{user}" in requests
        assert any(r.startswith(f"DISPLAY_SUMMARY,{user},") for r in requests)
        assert app.store.summary.cash == 4500


async def test_every_request_is_in_the_log_with_its_latency(system, user):
    async with dashboard(system, user) as (app, pilot):
        await pilot.press("ctrl+p", *"quote ABC")
        await until(pilot, lambda: "quote ABC" in palette_text(app), "the hit")
        await pilot.press("enter")
        await until(pilot, lambda: any(e.request == f"QUOTE,{user},ABC" for e in
                                       app.store.activity), "the QUOTE")
        await pilot.press("6")
        entry = next(e for e in app.store.activity if e.request == f"QUOTE,{user},ABC")
        await until(pilot, lambda: str(entry.seq) in row_keys(app, "#log-table"))
        row = cells(app, "#log-table", str(entry.seq))
        assert row[1:3] == ["ok", f"QUOTE,{user},ABC"] and '"price":"12.34"' in row[3]
        assert row[4].endswith(" ms")
