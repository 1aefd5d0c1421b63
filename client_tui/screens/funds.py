"""Add funds (a): an amount in dollars, added to the user's cash with ADD."""

from __future__ import annotations

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from client_tui.model import format as fmt
from client_tui.model.intents import IntentError, parse_amount
from client_tui.screens.keys import FIELD_KEYS, deliver_early_key
from client_tui.session import TradingSession
from client_tui.widgets.text import set_content


class AddFundsDialog(ModalScreen[None]):
    """Enter adds, Esc closes."""

    AUTO_FOCUS = "#funds-amount"
    BINDINGS = [
        *FIELD_KEYS, Binding("escape", "close", "Close")]

    def __init__(self, session: TradingSession) -> None:
        super().__init__(classes="dialog")
        self.session = session

    def compose(self) -> ComposeResult:
        with Vertical(id="funds-box"):
            yield Static(" ADD FUNDS ", id="funds-title", classes="dialog-title")
            yield Static(f"Cash now {fmt.money(self.session.store.summary.cash)}",
                         id="funds-cash")
            with Horizontal(classes="field-row"):
                yield Label("Amount $", classes="field-label")
                yield Input(id="funds-amount", placeholder="amount in $, e.g. 1000.00")
            yield Static("", id="funds-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Add (⏎)", id="funds-add", variant="primary")
                yield Button("Close (Esc)", id="funds-close")

    def on_key(self, event: events.Key) -> None:
        deliver_early_key(self, event)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        error = self.query_one("#funds-error", Static)
        try:
            parse_amount(event.value)
        except IntentError:
            return  # an error shown stays until the entry is valid or submitted again
        set_content(error, "")  # a valid entry: the earlier error is stale

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._add()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "funds-add":
            self._add()
        else:
            self.action_close()

    def action_close(self) -> None:
        self.dismiss(None)

    @work(exclusive=True, group="funds")
    async def _add(self) -> None:
        error = self.query_one("#funds-error", Static)
        try:
            amount = parse_amount(self.query_one("#funds-amount", Input).value)
        except IntentError as exc:
            set_content(error, str(exc))
            return
        set_content(error, "Adding …")
        outcome = await self.session.add_funds(amount)
        if not outcome.ok:
            set_content(error, outcome.error)
            return
        self.app.notify(f"Added {fmt.money(amount)}: cash "
                        f"{fmt.money_text(outcome.result.get('cash'))}")
        self.dismiss(None)
