"""Set or edit a trigger (t, or e on a trigger row): side, symbol, amount and trigger price.

A buy trigger reserves the amount now and buys when the price falls to the trigger price; a sell
trigger reserves the shares the amount buys at the trigger price and sells when the price rises."""

from __future__ import annotations

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from client_tui.model import format as fmt
from client_tui.model.intents import IntentError, parse_amount, parse_symbol
from client_tui.model.triggers import TriggerRow, crossed, distance_bp
from client_tui.screens.keys import FIELD_KEYS, deliver_early_key
from client_tui.session import TradingSession
from client_tui.widgets.text import set_content
from protocol.limits import SYMBOL_MAX_LENGTH


class TriggerDialog(ModalScreen[None]):
    """Enter sets the trigger (amount, then price, in the order the server accepts)."""

    BINDINGS = [
        *FIELD_KEYS, Binding("escape", "close", "Close")]

    def __init__(self, session: TradingSession, row: TriggerRow | None = None,
                 symbol: str = "", side: str = "buy") -> None:
        super().__init__(classes="dialog")
        self.session = session
        self.row = row
        self._symbol = row.symbol if row else symbol
        self._side = row.side if row else side
        #: The field focused from the start (not the side selector, the first in tab order).
        self.AUTO_FOCUS = "#trigger-amount" if self._symbol else "#trigger-symbol"

    def compose(self) -> ComposeResult:
        row = self.row
        title = "EDIT TRIGGER" if row else "SET TRIGGER"
        with Vertical(id="trigger-box"):
            yield Static(f" {title} ", classes="dialog-title")
            with Horizontal(classes="field-row"):
                yield Label("Side", classes="field-label")
                yield Select([("buy (at or below)", "buy"), ("sell (at or above)", "sell")],
                             value=self._side, allow_blank=False, id="trigger-side",
                             disabled=row is not None)
                yield Label("Symbol", classes="field-label")
                yield Input(self._symbol, id="trigger-symbol", max_length=SYMBOL_MAX_LENGTH,
                            placeholder="e.g. ABC", disabled=row is not None)
            with Horizontal(classes="field-row"):
                yield Label("Amount $", classes="field-label")
                yield Input(fmt.money(row.amount) if row else "", id="trigger-amount",
                            placeholder="in $, e.g. 500.00")
                yield Label("Trigger @", classes="field-label")
                yield Input(fmt.money(row.trigger_price) if row and row.trigger_price else "",
                            id="trigger-price", placeholder="price, e.g. 12.50")
            yield Static("", id="trigger-quote")
            yield Static("", id="trigger-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Set (⏎)", id="trigger-set", variant="primary")
                yield Button("Close (Esc)", id="trigger-close")

    def on_mount(self) -> None:
        # AUTO_FOCUS focuses the first field as the dialog shows (a focus() here would come
        # later, after keys typed fast, and pull the focus back).
        if self._symbol:
            self._fetch_quote(self._symbol)

    def on_key(self, event: events.Key) -> None:
        deliver_early_key(self, event)

    @property
    def side(self) -> str:
        value = self.query_one("#trigger-side", Select).value
        return value if isinstance(value, str) else "buy"

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        set_content(self.query_one("#trigger-error", Static), "")  # stale once edited
        if event.input.id == "trigger-symbol":
            try:
                self._fetch_quote(parse_symbol(event.value))
            except IntentError:
                pass
        self._show_quote()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._show_quote()

    @work(exclusive=True, group="trigger-quote")
    async def _fetch_quote(self, symbol: str) -> None:
        outcome, _ = await self.session.quote(symbol)
        if not outcome.ok:
            set_content(self.query_one("#trigger-quote", Static),
                        Text(f"Quote {symbol}: {outcome.error}", style="red"))
            return
        self._show_quote()

    def _show_quote(self) -> None:
        symbol = self.query_one("#trigger-symbol", Input).value.strip().upper()
        latest = self.session.store.quotes.latest(symbol) if symbol else None
        if latest is None:
            return
        text = Text.assemble(("Last ", "dim"), (symbol, "bold"), " ",
                             (fmt.money(latest.price), "bold"))
        try:
            price = parse_amount(self.query_one("#trigger-price", Input).value)
            amount = parse_amount(self.query_one("#trigger-amount", Input).value)
        except IntentError:
            set_content(self.query_one("#trigger-quote", Static), text)
            return
        if crossed(self.side, price, latest.price):
            text.append("  already crossed: fires at the next sweep", style="bold yellow")
        else:
            text.append(f"  {fmt.percent(distance_bp(price, latest.price))} to trigger",
                        style="bold")
        text.append(f"  ≈ {fmt.plural(amount // price, 'share')} at the trigger price",
                    style="dim")
        set_content(self.query_one("#trigger-quote", Static), text)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "trigger-set":
            self.action_submit()
        else:
            self.action_close()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        error = self.query_one("#trigger-error", Static)
        try:
            symbol = parse_symbol(self.query_one("#trigger-symbol", Input).value)
            amount = parse_amount(self.query_one("#trigger-amount", Input).value)
            price = parse_amount(self.query_one("#trigger-price", Input).value)
        except IntentError as exc:
            set_content(error, str(exc))
            return
        self._set(self.side, symbol, amount, price)

    @work(exclusive=True, group="trigger")
    async def _set(self, side: str, symbol: str, amount: int, price: int) -> None:
        error = self.query_one("#trigger-error", Static)
        set_content(error, "Setting …")
        outcomes = await self.session.set_trigger(side, symbol, amount, price)
        failed = next((o for o in outcomes if not o.ok), None)
        if failed is not None:
            set_content(error, f"{failed.line.split(',')[0]} failed — {failed.error}")
            return
        self.app.notify(f"{side.capitalize()} trigger armed: {fmt.money(amount)} of {symbol} "
                        f"@ {fmt.money(price)}")
        self.dismiss(None)
