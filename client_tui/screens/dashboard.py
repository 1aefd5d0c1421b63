"""The dashboard: header, six tabbed views (keys 1-6), status line and footer; trading keys."""

from __future__ import annotations

from collections.abc import Awaitable

from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input, TabbedContent, TabPane

from client_tui.controller import Trader
from client_tui.view_context import ViewContext
from client_tui.widgets.account_header import AccountHeader, LinkStatus
from client_tui.widgets.history import HistoryView
from client_tui.widgets.log import LogView
from client_tui.widgets.orders import OrdersView
from client_tui.widgets.positions import PositionsView
from client_tui.widgets.status_line import StatusLine
from client_tui.widgets.table import TradeTable
from client_tui.widgets.triggers import TriggersView
from client_tui.widgets.watchlist import WatchlistView

#: (pane id, tab title, view class), in key order 1-6.
TABS = (
    ("watchlist", "1 Watchlist", WatchlistView),
    ("positions", "2 Positions", PositionsView),
    ("orders", "3 Orders", OrdersView),
    ("triggers", "4 Triggers", TriggersView),
    ("history", "5 History", HistoryView),
    ("log", "6 Log", LogView),
)


class DashboardScreen(Screen):
    """Views get state via `show()` (attributes down); their requests bubble up as messages."""

    AUTO_FOCUS = "#watch-table"
    # Short labels, so that the footer keeps every one at 80 columns. The keys opening a dialog
    # are priority bindings: they run before the next key is routed, so keys typed right after
    # them (fast typing, a paste) reach the dialog, not this screen. In a text field they type.
    BINDINGS = [
        Binding("b", "buy", "Buy", priority=True),
        Binding("s", "sell", "Sell", priority=True),
        Binding("t", "trigger", "Trigger", priority=True),
        Binding("a", "add_funds", "Funds", tooltip="add funds", priority=True),
        Binding("slash", "watch", "Watch", key_display="/", tooltip="add a symbol"),
        Binding("r", "refresh", "Refresh", tooltip="the account and every quote in play"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "app.quit", "Quit"),
        Binding("escape", "focus_table", "Table", show=False),
        *(Binding(str(i), f"tab('{pane}')", title, show=False)
          for i, (pane, title, _) in enumerate(TABS, start=1)),
    ]

    def __init__(self, trader: Trader) -> None:
        super().__init__()
        self.trader = trader
        #: The next tab switch focuses the watchlist's input rather than a table.
        self._input_next = False

    def compose(self) -> ComposeResult:
        yield AccountHeader(id="account-header")
        with TabbedContent(initial="watchlist", id="tabs"):
            for pane, title, view in TABS:
                with TabPane(title, id=pane):
                    yield view(id=f"{pane}-view")
        yield StatusLine(id="status-line")
        yield Footer(compact=True)

    def on_resize(self) -> None:
        # At 80 columns the footer's room goes to the trading keys; Ctrl+P still works (? says).
        self.query_one(Footer).show_command_palette = self.size.width >= 100

    # --- attributes down ------------------------------------------------------------------

    def show(self, ctx: ViewContext, link: LinkStatus) -> None:
        self.show_header(ctx, link)
        for pane, _, view in TABS:
            self.query_one(f"#{pane}-view", view).show(ctx)

    def show_header(self, ctx: ViewContext, link: LinkStatus) -> None:
        self.query_one(AccountHeader).show(ctx.store.user, ctx.store.totals(), link,
                                           ctx.now_ms, ctx.tz)

    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    @property
    def active_tab(self) -> str:
        return self.query_one(TabbedContent).active

    def selected_symbol(self) -> str:
        """The symbol under the cursor of the watchlist, positions, orders or triggers view."""
        tab = self.active_tab
        if tab not in ("watchlist", "positions", "orders", "triggers"):
            return ""
        key = self.query_one(f"#{tab}-view").query_one(TradeTable).selected_key or ""
        if tab == "orders":
            return ""
        symbol = key.split(":")[-1]
        return symbol if symbol.isalpha() and symbol.isupper() else ""

    # --- keys -----------------------------------------------------------------------------

    def _typing(self) -> None:
        """Raise SkipAction while a text field has the focus: the key is a character there."""
        if isinstance(self.focused, Input):
            raise SkipAction()

    def acknowledge(self) -> None:
        """The user did something: an error of an earlier action leaves the status line."""
        self.status.acknowledge()

    def action_tab(self, pane: str) -> None:
        self.acknowledge()
        self.query_one(TabbedContent).active = pane  # shows the pane at once
        self.action_focus_table()

    def action_focus_table(self) -> None:
        self.query_one(f"#{self.active_tab}-view").query_one(TradeTable).focus()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if self._input_next:
            self._input_next = False
            self.query_one(WatchlistView).focus_input()
        else:
            self.action_focus_table()

    def action_watch(self) -> None:
        self.acknowledge()
        if self.active_tab == "watchlist":
            self.query_one(WatchlistView).focus_input()
        else:
            self._input_next = True
            self.query_one(TabbedContent).active = "watchlist"

    # The dialogs' keys wait for the dialog to be mounted with its field focused: the keys typed
    # after them are routed only then, so they land in the dialog's fields, in order.

    async def action_buy(self) -> None:
        self._typing()
        self.acknowledge()
        await self._opened(self.trader.open_ticket("buy", self.selected_symbol()))

    async def action_sell(self) -> None:
        self._typing()
        self.acknowledge()
        await self._opened(self.trader.open_ticket("sell", self.selected_symbol()))

    async def action_trigger(self) -> None:
        self._typing()
        self.acknowledge()
        await self._opened(self.trader.open_trigger(symbol=self.selected_symbol()))

    async def action_add_funds(self) -> None:
        self._typing()
        self.acknowledge()
        await self._opened(self.trader.open_add_funds())

    @staticmethod
    async def _opened(mounted: Awaitable[object] | None) -> None:
        if mounted is not None:
            await mounted

    def action_refresh(self) -> None:
        self.acknowledge()
        self.trader.refresh_all()

    def action_help(self) -> None:
        self.acknowledge()
        self.trader.open_help()

    # --- messages up ----------------------------------------------------------------------

    def on_watchlist_view_watch_requested(self, message: WatchlistView.WatchRequested) -> None:
        self.trader.watch(message.symbol)

    def on_watchlist_view_unwatch_requested(self,
                                            message: WatchlistView.UnwatchRequested) -> None:
        self.trader.unwatch(message.symbol)

    def on_watchlist_view_trade_requested(self, message: WatchlistView.TradeRequested) -> None:
        self.trader.open_ticket(message.side, message.symbol)

    def on_orders_view_settle_requested(self, message: OrdersView.SettleRequested) -> None:
        self.trader.settle(message.action, message.side, message.txn)

    def on_triggers_view_edit_requested(self, message: TriggersView.EditRequested) -> None:
        self.trader.open_trigger(message.row)

    def on_triggers_view_cancel_requested(self, message: TriggersView.CancelRequested) -> None:
        self.trader.cancel_trigger(message.row)

    def on_triggers_view_new_requested(self, message: TriggersView.NewRequested) -> None:
        self.trader.open_trigger(symbol=self.selected_symbol())

    def on_history_view_export_requested(self, message: HistoryView.ExportRequested) -> None:
        self.trader.export_history(message.filter)
