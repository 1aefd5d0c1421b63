"""`daytrade tui`: the Textual dashboard app, its controller role, and `main(argv)`.

The app owns the Connection, the AccountStore and the TradingSession; screens ask it for actions
(the Trader protocol) and it runs them in workers, then redraws the views from the store.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import tzinfo
from pathlib import Path

from textual import work
from textual.app import App
from textual.css.query import NoMatches
from textual.widget import AwaitMount

from client_tui.clock import Clock, SystemClock
from client_tui.connection import (
    BACKOFF,
    PING_EVERY,
    Connection,
    Connector,
    ConnState,
    Outcome,
    tcp_connect,
)
from client_tui.demo import DemoAccount, EmbeddedServer, EmbeddedServerError, FundingError, fund
from client_tui.model import format as fmt
from client_tui.model.events import command_of, describe_event, describe_result
from client_tui.model.history import HistoryFilter, filtered, to_csv
from client_tui.model.intents import (
    AddFunds,
    CancelTrigger,
    Intent,
    PlaceOrder,
    SettleOrder,
    SetTrigger,
    SymbolAction,
)
from client_tui.model.store import AccountStore
from client_tui.model.triggers import TriggerRow
from client_tui.model.watchlist import default_data_dir, load, merged, save, watchlist_path
from client_tui.palette import TradeCommands
from client_tui.screens.dashboard import DashboardScreen
from client_tui.screens.funds import AddFundsDialog
from client_tui.screens.help import HelpScreen
from client_tui.screens.login import LoginScreen
from client_tui.screens.order_ticket import OrderTicket
from client_tui.screens.trigger import TriggerDialog
from client_tui.session import TradingSession
from client_tui.view_context import ViewContext
from client_tui.widgets.account_header import LinkStatus
from protocol.replies import PENDING_EXPIRED

#: Seconds between redraws (clocks, ages, countdowns; no request is sent by it).
TICK = 1.0


class DaytradeApp(App[None]):
    """The dashboard. Everything external (connector, clock, time zone) can be passed in."""

    CSS_PATH = "daytrade.tcss"
    TITLE = "daytrade"
    COMMANDS = App.COMMANDS | {TradeCommands}

    def __init__(self, *, host: str = "127.0.0.1", port: int = 4000, user: str = "",
                 demo: DemoAccount | None = None, watchlist: Sequence[str] = (),
                 connector: Connector = tcp_connect,
                 clock: Clock | None = None, tz: tzinfo | None = None,
                 export_dir: Path | None = None, ping_every: float = PING_EVERY,
                 backoff: tuple[float, ...] = BACKOFF, tick: float = TICK,
                 data_dir: Path | None = None) -> None:
        super().__init__()
        self.host, self.port, self.user = host, port, user
        self.demo = demo
        self.initial_watchlist = tuple(watchlist) or (demo.watchlist if demo else ())
        self.clock = clock or SystemClock()
        self.tz = tz
        self.export_dir = export_dir or Path.cwd()
        self.tick = tick
        #: Where the watchlist is kept per user (None: the XDG data dir, read at login).
        self.data_dir = data_dir
        self.connection = Connection(self, connector=connector, clock=self.clock,
                                     ping_every=ping_every, backoff=backoff)
        self.store = AccountStore()
        self.session = TradingSession(self.connection, self.store, self.clock, self.render_views)
        self.link = LinkStatus(ConnState.OFFLINE)
        self.dashboard: DashboardScreen | None = None
        self._logged_in = False
        #: The watchlist as last written to disk (written again when it differs).
        self._saved_watchlist: tuple[str, ...] = ()

    @property
    def logged_in(self) -> bool:
        return self._logged_in

    # --- start, login, demo ---------------------------------------------------------------

    def on_mount(self) -> None:
        status = "Starting the demo account …" if self.demo else ""
        self.push_screen(LoginScreen(self.log_in, self.host, self.port, self.user, status))
        if self.demo is not None:
            self._start_demo(self.demo)
        self.set_interval(self.tick, self.render_views)

    async def log_in(self, host: str, port: int, user: str, password: str) -> Outcome:
        """Connect and LOGIN; on success show the dashboard (LoginScreen calls this)."""
        self.store = AccountStore(user)
        self.session = TradingSession(self.connection, self.store, self.clock, self.render_views)
        outcome = await self.connection.open(host, port, user, password)
        if not outcome.ok:
            return outcome
        self._logged_in = True
        if outcome.result.get("signed_up") and self.demo is None:
            self.notify(f"Signed up as {user}: a new account with 0.00 cash (a adds funds)")
        path = self.watchlist_file
        saved = load(path) if path is not None else []
        for symbol in merged(saved, self.initial_watchlist):
            self.store.watch(symbol)
        self._saved_watchlist = tuple(saved)
        self.dashboard = DashboardScreen(self)
        # Pushed over the login screen, whose worker is running this (switching would end it).
        await self.push_screen(self.dashboard)
        self._status(f"{self.connection.detail} · ? shows every key")
        await self.session.refresh_summary()
        self.render_views()
        # One round of quotes for what is on screen; from then on quotes are asked for only
        # when the user refreshes (r), opens a ticket or adds a symbol: no polling.
        self._load_quotes()
        return outcome

    @work(exclusive=True, group="demo")
    async def _start_demo(self, demo: DemoAccount) -> None:
        outcome = await self.log_in(demo.host, demo.port, demo.user, demo.password)
        if not outcome.ok:
            self._login_status(f"Demo login failed — {outcome.error}")
            return
        try:
            cash = await fund(demo)
        except (FundingError, OSError, TimeoutError) as exc:
            self.notify(f"Could not fund the demo account: {exc}", severity="error")
            return
        self.notify(f"Demo: {demo.user} funded with {fmt.money(demo.cash)} "
                    f"(cash {fmt.money_text(cash)}); b buys, s sells, ? shows every key")
        await self.session.refresh_summary()
        self.render_views()

    def _back_to_login(self, reason: str) -> None:
        """The connection is gone for good (e.g. the login refused on reconnect): say so on the
        login screen, ready for another try."""
        self._logged_in = False
        self.dashboard = None
        self.notify(f"Offline: {reason}", severity="error", timeout=10)
        while len(self.screen_stack) > 1 and not isinstance(self.screen, LoginScreen):
            self.pop_screen()
        self._login_status(f"Disconnected — {reason}. Log in again.")

    def _login_status(self, text: str) -> None:
        if isinstance(self.screen, LoginScreen):
            self.screen.show_status(text, error=True)

    # --- refreshing -----------------------------------------------------------------------

    @work(group="quotes")
    async def _load_quotes(self, symbols: Sequence[str] | None = None) -> None:
        """QUOTE the symbols in play (or `symbols`) that were never quoted yet."""
        await self.session.quote_unseen(symbols)
        self.render_views()

    def refresh_all(self) -> None:
        """The refresh key (r): the account, then a fresh quote of every symbol in play."""
        if self._logged_in:
            self._refresh_all()

    @work(exclusive=True, group="refresh-all")
    async def _refresh_all(self) -> None:
        self._status("Refreshing the account and the quotes …")
        summary = await self.session.refresh_summary()
        outcomes = await self.session.refresh_quotes(force=True)
        failed = [o for o in [summary, *outcomes] if not o.ok]
        if not failed:
            self._status(f"{fmt.clock(self.clock.now_ms(), self.tz)} refreshed: the account "
                         f"and {fmt.plural(len(outcomes), 'quote')}")
        self.render_views()

    @property
    def watchlist_file(self) -> Path | None:
        """This user's watchlist file (None before login)."""
        if not self.store.user:
            return None
        return watchlist_path(self.data_dir or default_data_dir(), self.store.user)

    def _save_watchlist(self) -> None:
        """Write the watchlist when it changed (watch, unwatch, a symbol newly owned)."""
        current = tuple(self.store.watchlist)
        path = self.watchlist_file
        if current == self._saved_watchlist or path is None or not self._logged_in:
            return
        self._saved_watchlist = current
        try:
            save(path, current)
        except OSError as exc:
            self.notify(f"Could not save the watchlist to {path}: {exc}", severity="warning")

    def render_views(self) -> None:
        """Hand the dashboard the store and the clocks (attributes down).

        Under a dialog only the header is redrawn (it shows above the dialog); the views wait
        for the dialog to close, which redraws them.
        """
        self._save_watchlist()
        if self.dashboard is None or self.dashboard not in self.screen_stack:
            return
        ctx = ViewContext(self.store, self.clock.now_ms(), self.connection.server_now_ms(),
                          self.tz)
        try:
            if self.screen is self.dashboard:
                self.dashboard.show(ctx, self.link)
            else:
                self.dashboard.show_header(ctx, self.link)
        except NoMatches:
            pass  # the dashboard is being torn down (the app is exiting)

    # --- connection messages (up) ---------------------------------------------------------

    def on_connection_state_changed(self, message: Connection.StateChanged) -> None:
        changed = message.state != self.link.state
        self.link = LinkStatus(message.state, message.rtt_ms, message.retry_at_ms)
        if changed or message.state != ConnState.CONNECTED:
            self.store.activity.add(self.clock.now_ms(), "connection", str(message.state),
                                    message.detail)
        if message.state in (ConnState.RECONNECTING, ConnState.OFFLINE):
            self._status(f"{message.state}: {message.detail}", error=True)
        elif changed:
            self._status(f"{message.state}: {message.detail}")
        if self._logged_in and message.given_up:
            self._back_to_login(message.detail)
            return
        self.render_views()

    def on_connection_logged(self, message: Connection.Logged) -> None:
        outcome = message.outcome
        detail = describe_result(outcome.result) if outcome.ok else outcome.message
        self.store.activity.add(self.clock.now_ms(), "ok" if outcome.ok else "error",
                                outcome.line, detail, outcome.code, outcome.latency_ms)
        if not outcome.ok:
            self._status(f"{fmt.clock(self.clock.now_ms(), self.tz)} "
                         f"{command_of(outcome.line)} → {outcome.error}", error=True)

    def _status(self, text: str, error: bool = False) -> None:
        """The dashboard's status line: the last failure stays until the connection's news."""
        try:
            line = self.dashboard.status if self.dashboard is not None else None
        except NoMatches:
            return  # the dashboard is being torn down
        if line is not None:
            (line.show_error if error else line.show_info)(text)

    def on_connection_event_pushed(self, message: Connection.EventPushed) -> None:
        event = message.event
        text = describe_event(event.event, event.data)
        self.store.activity.add(self.clock.now_ms(), "event", event.event, text)
        handled = event.event == PENDING_EXPIRED and any(
            isinstance(s, OrderTicket) and s.server_expired(event.data) for s in self.screen_stack)
        if not handled:
            self.notify(text, title=event.event.replace("_", " "),
                        severity="warning" if event.event == PENDING_EXPIRED else "information",
                        timeout=10)
        self._refresh()

    def on_connection_restored(self, message: Connection.Restored) -> None:
        self.notify("Reconnected and logged in again")
        self._refresh()

    @work(group="refresh")
    async def _refresh(self) -> None:
        """After a pushed event or a reconnection: the account again (a trigger may have bought
        a symbol never quoted: quote it once)."""
        await self.session.refresh_summary()
        self.render_views()
        await self.session.quote_unseen()
        self.render_views()

    # --- Trader: actions the screens ask for ----------------------------------------------

    def open_ticket(self, side: str, symbol: str = "", amount: int | None = None,
                    place: bool = False) -> AwaitMount | None:
        if not self._logged_in:
            return None
        return self.push_screen(OrderTicket(self.session, self.connection.server_now_ms, side,
                                            symbol, amount, place), self._after_dialog)

    def open_trigger(self, row: TriggerRow | None = None,
                     symbol: str = "") -> AwaitMount | None:
        if not self._logged_in:
            return None
        return self.push_screen(TriggerDialog(self.session, row, symbol), self._after_dialog)

    def open_add_funds(self) -> AwaitMount | None:
        if not self._logged_in:
            return None
        return self.push_screen(AddFundsDialog(self.session), self._after_dialog)

    def open_help(self) -> None:
        self.push_screen(HelpScreen())

    def _after_dialog(self, _: object = None) -> None:
        self.render_views()

    def watch(self, symbol: str) -> None:
        if not self.store.watch(symbol):
            self.notify(f"{symbol} is on the watchlist already")
        self._quote(symbol, announce=False)

    def unwatch(self, symbol: str) -> None:
        owned = self.store.owned().get(symbol, 0)
        if owned:
            self.notify(f"You own {fmt.plural(owned, 'share')} of {symbol}: it stays on the "
                        "watchlist while you do", severity="warning")
        elif self.store.unwatch(symbol):
            self.notify(f"{symbol} removed from the watchlist")
        self.render_views()

    @work(group="actions")
    async def _quote(self, symbol: str, announce: bool = True) -> None:
        self.render_views()
        outcome, sample = await self.session.quote(symbol)
        if sample is None:
            self._failed(outcome)
        elif announce:
            self.notify(f"{symbol} {fmt.money(sample.price)} "
                        f"(age {fmt.age(sample.age_at(self.clock.now_ms()))})")
        self.render_views()

    def settle(self, action: str, side: str, txn: int | None = None) -> None:
        self._settle(action, side, txn)

    @work(group="actions")
    async def _settle(self, action: str, side: str, txn: int | None) -> None:
        outcome = await self.session.settle(action, side)
        if outcome.ok:
            r = outcome.result
            done = "Committed" if action == "commit" else "Cancelled"
            self.notify(f"{done} {side.upper()}{f' #{txn}' if txn else ''}: {r.get('shares')} "
                        f"{r.get('symbol')} @ {fmt.money_text(r.get('price'))}; "
                        f"cash {fmt.money_text(r.get('cash'))}")
        else:
            self._failed(outcome)
        self.render_views()

    def cancel_trigger(self, row: TriggerRow) -> None:
        self._cancel_trigger(row.side, row.symbol)

    @work(group="actions")
    async def _cancel_trigger(self, side: str, symbol: str) -> None:
        outcome = await self.session.cancel_trigger(side, symbol)
        if outcome.ok:
            self.notify(f"{side.capitalize()} trigger on {symbol} cancelled; "
                        f"cash {fmt.money_text(outcome.result.get('cash'))}")
        else:
            self._failed(outcome)
        self.render_views()

    def export_history(self, flt: HistoryFilter) -> None:
        history = self.store.history
        rows = filtered(history.records, flt)
        stamp = fmt.iso_utc(self.clock.now_ms()).replace(":", "").replace("-", "")[:15]
        path = self.export_dir / f"daytrade-{self.store.user}-history-{stamp}.csv"
        try:
            path.write_text(to_csv(rows), encoding="utf-8")
        except OSError as exc:
            self.notify(f"Export failed: {exc}", severity="error")
            return
        partial_note = "" if history.complete else f" ({len(history)} of {history.total} loaded)"
        self.notify(f"Exported {len(rows)} transactions to {path}{partial_note}")

    def run_intent(self, intent: Intent) -> None:
        """Run a typed command from the palette."""
        if self.dashboard is not None and self.dashboard.is_attached:
            self.dashboard.acknowledge()
        match intent:
            case PlaceOrder(side, symbol, amount):
                self.open_ticket(side, symbol, amount, place=True)
            case SettleOrder(action, side):
                self.settle(action, side)
            case CancelTrigger(side, symbol):
                self._cancel_trigger(side, symbol)
            case SymbolAction("watch", symbol):
                self.watch(symbol)
            case SymbolAction("unwatch", symbol):
                self.unwatch(symbol)
            case SymbolAction(_, symbol):
                self._quote(symbol)
            case SetTrigger() | AddFunds():
                self._run_change(intent)

    @work(group="actions")
    async def _run_change(self, intent: SetTrigger | AddFunds) -> None:
        if isinstance(intent, AddFunds):
            outcomes = [await self.session.add_funds(intent.amount)]
        else:
            outcomes = await self.session.set_trigger(intent.side, intent.symbol, intent.amount,
                                                      intent.price)
        failed = next((o for o in outcomes if not o.ok), None)
        if failed is None:
            cash = fmt.money_text(outcomes[-1].result.get("cash"))
            self.notify(f"Done: {intent.describe()}; cash {cash}")
        else:
            self._failed(failed)
        self.render_views()

    def notify(self, message: str, *, title: str = "", severity: str = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """A toast, also kept in the Log view (toasts fade; the log does not)."""
        self.store.activity.add(self.clock.now_ms(), "notice", title or severity, message,
                                "" if severity != "error" else "error")
        super().notify(message, title=title, severity=severity,  # type: ignore[arg-type]
                       timeout=timeout, markup=markup)

    def _failed(self, outcome: Outcome) -> None:
        self.notify(f"{command_of(outcome.line)} failed — {outcome.error}", severity="error",
                    timeout=8)

    async def action_quit(self) -> None:
        self._logged_in = False
        await self.connection.close()
        self.exit()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="daytrade tui", description="The daytrade dashboard.")
    ap.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=4000, help="server port (default 4000)")
    ap.add_argument("--user", default="", help="user id to log in as (prefilled)")
    ap.add_argument("--demo", action="store_true",
                    help="start an embedded server and a funded demo account first")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the dashboard; with --demo, around an embedded `daytrade up` it stops on exit."""
    args = build_parser().parse_args(argv)
    if not args.demo:
        DaytradeApp(host=args.host, port=args.port, user=args.user).run()
        return 0
    print("daytrade tui --demo: starting an embedded server …", file=sys.stderr, flush=True)
    try:
        server = EmbeddedServer().start()
    except (EmbeddedServerError, OSError) as exc:
        print(f"daytrade tui --demo: {exc}", file=sys.stderr)
        return 1
    try:
        demo = DemoAccount.for_server(server, user=args.user or "demo")
        DaytradeApp(host=server.host, port=server.port, user=demo.user, demo=demo).run()
    finally:
        server.stop()
    return 0
