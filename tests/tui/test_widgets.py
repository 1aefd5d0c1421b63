"""client_tui.widgets: table cells, the keyed table, the header line."""

from __future__ import annotations

from textual.app import App, ComposeResult

from client_tui.connection import ConnState
from client_tui.model.portfolio import Totals
from client_tui.widgets import cells
from client_tui.widgets.account_header import AccountHeader, LinkStatus, badge
from client_tui.widgets.table import TradeTable


def test_quote_age_is_green_then_amber_then_red():
    assert str(cells.quote_age(44_000).style) == "green"
    assert str(cells.quote_age(45_000).style) == "bold yellow"
    assert str(cells.quote_age(60_000).style) == "bold red"
    assert str(cells.quote_age(None)) == "—"


def test_pnl_is_signed_and_coloured():
    assert (str(cells.pnl(150)), str(cells.pnl(150).style)) == ("+1.50", "green")
    assert (str(cells.pnl(-150)), str(cells.pnl(-150).style)) == ("-1.50", "red")


def test_badge_shows_round_trip_when_connected_and_retry_countdown_when_reconnecting():
    assert str(badge(LinkStatus(ConnState.CONNECTED, 3.14), 0)) == "● connected 3.1 ms"
    assert str(badge(LinkStatus(ConnState.RECONNECTING, None, 2_500), 0)) == (
        "◌ reconnecting 0:03")
    assert str(badge(LinkStatus(ConnState.OFFLINE), 0)) == "○ offline"
    assert str(badge(LinkStatus(ConnState.CONNECTED, 1.0), 0, compact=True)) == "● 1.0 ms"


class TableApp(App):
    def compose(self) -> ComposeResult:
        yield TradeTable([("Symbol", 6), ("Price", 8)], id="t")
        yield AccountHeader(id="h")


def rows(*keys: str) -> list:
    return [(k, (k, f"{len(k)}.00")) for k in keys]


async def test_a_moved_cursor_stays_on_its_row_when_rows_are_added_above():
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(TradeTable)
        table.show(rows("ABC", "DEF", "XYZ"))
        await pilot.pause()
        table.move_cursor(row=1)
        table.show(rows("QRS", "ABC", "DEF", "XYZ"))
        await pilot.pause()
        assert table.selected_key == "DEF"


async def test_a_cursor_at_the_top_stays_at_the_top():
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(TradeTable)
        table.show(rows("_total"))
        table.show(rows("ABC", "_total"))
        await pilot.pause()
        assert table.selected_key == "ABC"


async def test_changed_cells_update_in_place():
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(TradeTable)
        table.show(rows("ABC", "DEF"))
        table.move_cursor(row=1)
        table.show([("ABC", ("ABC", "9.99")), ("DEF", ("DEF", "3.00"))])
        await pilot.pause()
        assert table.get_row("ABC") == ["ABC", "9.99"] and table.selected_key == "DEF"


async def test_the_header_drops_to_a_compact_line_when_narrow():
    totals = Totals(cash=829248, reserved=35000, holdings_value=135752, unrealised=0,
                    unpriced=())
    link = LinkStatus(ConnState.CONNECTED, 0.4)
    for width, expected in ((120, " daytrade  alice │ Cash 8,292.48 │ Reserved 350.00"),
                            (80, " alice │ Cash 8,292.48 │ Rsv 350.00")):
        app = TableApp()
        async with app.run_test(size=(width, 10)) as pilot:
            header = app.query_one(AccountHeader)
            header.show("alice", totals, link, 0, None)
            await pilot.pause()
            assert str(header.content).startswith(expected)
