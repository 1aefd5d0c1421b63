"""Screenshots of every view (120x40) and of the main view at 80x24, compared with the accepted
SVGs in __snapshots__/ (pytest --snapshot-update accepts new ones; copies live in
docs/screenshots/).

Deterministic by construction: the Connection is fed real server replies recorded in
recorded/alice.json (tests/tui/recording.py), the clock is frozen, the time zone is UTC, and the
app's periodic work is pushed out of the way.
"""

from __future__ import annotations

from datetime import UTC

from textual.widgets import Input

from client_tui.app import DaytradeApp
from client_tui.model.quotes import QuoteSample
from client_tui.model.ticket import TicketState
from client_tui.widgets.table import TradeTable
from tests.tui.conftest import until
from tests.tui.fakes import FrozenClock, RecordedServer, load_recording

RECORDING = load_recording()
WATCHLIST = ("ABC", "DEF", "XYZ", "QRS")
#: Earlier quotes (cents) for the sparklines, oldest first; the recorded quote follows them.
PRICE_PATHS = {
    "ABC": (1190, 1205, 1221, 1212, 1228, 1240, 1231, 1219, 1226),
    "DEF": (4702, 4688, 4650, 4671, 4633, 4610, 4598, 4580),
    "XYZ": (470, 476, 481, 488, 492, 499, 503),
    "QRS": (8650, 8700, 8740, 8720, 8790, 8810),
}
HOUR = 3600.0


def recorded_app() -> DaytradeApp:
    clock = FrozenClock(RECORDING["now_ms"])
    return DaytradeApp(connector=RecordedServer(RECORDING["replies"], clock), clock=clock,
                       tz=UTC, watchlist=WATCHLIST, ping_every=HOUR, tick=HOUR)


async def settle(pilot) -> None:
    """Wait until no worker is running but the app's endless poll loop, then let it draw."""
    app = pilot.app

    def idle() -> bool:
        return not [w for w in app.workers if not w.is_finished and w.group != "poll"
                    and w.name != "connection"]

    await until(pilot, idle, "the app's workers to finish")
    for widget in app.screen.query(Input):
        widget.cursor_blink = False
    await pilot.pause()


async def logged_in(pilot) -> None:
    """Log in as the recorded alice, with a few earlier quotes per symbol for the sparklines."""
    app: DaytradeApp = pilot.app
    await app.log_in("127.0.0.1", 4000, RECORDING["user"], RECORDING["password"])
    await until(pilot, lambda: all(app.store.quotes.latest(s) for s in WATCHLIST),
                "a quote of every watched symbol")
    now = app.clock.now_ms()
    for symbol, path in PRICE_PATHS.items():
        latest = app.store.quotes.latest(symbol)
        for i, price in enumerate(path):
            back = (len(path) - i) * 60_000
            app.store.quotes.record(QuoteSample(symbol, price, latest.quote_time - back,
                                                f"earlier-{i}", 0, now - back))
    # One quote about to expire (amber) and one past its life (red), as a dropped feed shows.
    qrs, xyz = app.store.quotes.latest("QRS"), app.store.quotes.latest("XYZ")
    app.store.quotes.record(QuoteSample("QRS", qrs.price, qrs.quote_time + 1, "aging", 52_000,
                                        now))
    app.store.quotes.record(QuoteSample("XYZ", xyz.price, xyz.quote_time + 1, "stale", 75_000,
                                        now))
    app.render_views()
    await settle(pilot)


def view(key: str):
    async def run_before(pilot) -> None:
        await logged_in(pilot)
        await pilot.press(key)
        pilot.app.render_views()
        await settle(pilot)
        if key.isdigit():  # the view's table has the focus (and so shows its cursor)
            await until(pilot, lambda: isinstance(pilot.app.focused, TradeTable),
                        "the view's table to take the focus")
            await pilot.pause()
    return run_before


def test_login_screen(snap_compare):
    assert snap_compare(recorded_app(), terminal_size=(120, 40), run_before=settle)


def test_watchlist_view(snap_compare):
    assert snap_compare(recorded_app(), terminal_size=(120, 40), run_before=view("1"))


def test_positions_view(snap_compare):
    assert snap_compare(recorded_app(), terminal_size=(120, 40), run_before=view("2"))


def test_orders_view(snap_compare):
    assert snap_compare(recorded_app(), terminal_size=(120, 40), run_before=view("3"))


def test_triggers_view(snap_compare):
    assert snap_compare(recorded_app(), terminal_size=(120, 40), run_before=view("4"))


def test_history_view(snap_compare):
    assert snap_compare(recorded_app(), terminal_size=(120, 40), run_before=view("5"))


def test_log_view(snap_compare):
    assert snap_compare(recorded_app(), terminal_size=(120, 40), run_before=view("6"))


def test_main_view_at_80x24(snap_compare):
    assert snap_compare(recorded_app(), terminal_size=(80, 24), run_before=view("1"))


def test_order_ticket_counting_down(snap_compare):
    async def run_before(pilot) -> None:
        await logged_in(pilot)
        await pilot.press("b", *"100")
        await settle(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: getattr(pilot.app.screen, "state", None)
                    == TicketState.PENDING, "the ticket to be pending")
        await settle(pilot)

    assert snap_compare(recorded_app(), terminal_size=(120, 40), run_before=run_before)


def test_help_overlay(snap_compare):
    assert snap_compare(recorded_app(), terminal_size=(120, 40), run_before=view("question_mark"))
