"""The order ticket (b, s): symbol and amount, the quote and its age, shares and cost; once placed,
a countdown to the server's expiry. Enter places, then commits; Esc cancels (or closes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ProgressBar, Static

from client_tui.model import format as fmt
from client_tui.model.intents import IntentError, parse_symbol
from client_tui.model.quotes import freshness
from client_tui.model.summary import ReplyShapeError
from client_tui.model.ticket import (
    QUOTE_NOTE,
    KeyAction,
    Preview,
    Ticket,
    TicketState,
    Toast,
    parse_entry,
)
from client_tui.screens.keys import FIELD_KEYS, deliver_early_key
from client_tui.session import TradingSession
from client_tui.widgets.cells import FRESHNESS_STYLE
from client_tui.widgets.text import set_content, set_line
from protocol.limits import PENDING_LIFETIME_MS, SYMBOL_MAX_LENGTH

SETTLING = {KeyAction.COMMIT: "Committing …", KeyAction.CANCEL: "Cancelling …"}


class OrderTicket(ModalScreen[None]):
    """One BUY or SELL from entry to commit, cancel or expiry: a view of a model.ticket.Ticket."""

    BINDINGS = [
        *FIELD_KEYS,
        Binding("enter", "enter", "Place / commit", priority=True),
        Binding("escape", "escape", "Cancel / close", priority=True),
    ]

    def __init__(self, session: TradingSession, server_now_ms: Callable[[], int], side: str,
                 symbol: str = "", amount: int | None = None, place: bool = False) -> None:
        super().__init__(classes=f"dialog -{side}")
        self.session = session
        self.server_now_ms = server_now_ms
        self.side = side
        self._symbol = symbol
        self._amount = amount
        self._place_now = place
        self.ticket = Ticket(side)
        #: The field focused as the ticket shows (a later focus() could undo fast typing).
        self.AUTO_FOCUS = "#ticket-amount" if symbol else "#ticket-symbol"

    @property
    def state(self) -> TicketState:
        """`entry`, `placing`, `pending`, `settling` or `done` (a str enum)."""
        return self.ticket.state

    @property
    def txn(self) -> int | None:
        """The txn of the order placed (None before)."""
        return None if self.ticket.order is None else self.ticket.order.txn

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="ticket-box"):
            yield Static(Text(f" {self.side.upper()} ", style="bold reverse"), id="ticket-title")
            with Horizontal(classes="field-row"):
                yield Label("Symbol", classes="field-label")
                yield Input(self._symbol, id="ticket-symbol", max_length=SYMBOL_MAX_LENGTH,
                            placeholder="e.g. ABC")
                yield Label("Amount $", classes="field-label")
                yield Input("" if self._amount is None else fmt.money(self._amount),
                            id="ticket-amount", placeholder="amount in $, e.g. 100.00")
            yield Static("", id="ticket-quote")
            yield Static("", id="ticket-estimate")
            yield Static("", id="ticket-warning", classes="error")
            yield Static("", id="ticket-order")
            yield ProgressBar(total=PENDING_LIFETIME_MS, show_eta=False, show_percentage=False,
                              id="ticket-progress")
            yield Static("", id="ticket-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button(f"Place {self.side.upper()} (⏎)", id="ticket-go",
                             variant="success" if self.side == "buy" else "error")
                yield Button("Close (Esc)", id="ticket-stop")
            yield Static("", id="ticket-hint", classes="note")

    def on_mount(self) -> None:
        self.query_one("#ticket-progress").display = False
        for empty in ("#ticket-quote", "#ticket-estimate", "#ticket-warning", "#ticket-order",
                      "#ticket-error"):
            self.query_one(empty).display = False
        self._hint("Enter places the order; Esc closes.")
        if self._symbol:
            self._fetch_quote(self._symbol)
        self.set_interval(0.25, self._tick)
        if self._place_now:
            self.action_enter()

    def on_key(self, event: events.Key) -> None:
        deliver_early_key(self, event)

    # --- entry ----------------------------------------------------------------------------

    def _entered(self) -> tuple[str, int]:
        """The symbol and amount typed; raises IntentError."""
        return parse_entry(self.query_one("#ticket-symbol", Input).value,
                           self.query_one("#ticket-amount", Input).value)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.state == TicketState.ENTRY:
            self._error("")  # what is typed now makes an earlier error stale
        if event.input.id == "ticket-symbol":
            try:
                self._fetch_quote(parse_symbol(event.value))
            except IntentError:
                set_line(self.query_one("#ticket-quote", Static), "")
        self._show_estimate()

    @work(exclusive=True, group="ticket-quote")
    async def _fetch_quote(self, symbol: str) -> None:
        set_line(self.query_one("#ticket-quote", Static), f"Quote {symbol}: asking …")
        outcome, _ = await self.session.quote(symbol)
        if not outcome.ok:
            set_line(self.query_one("#ticket-quote", Static),
                        Text(f"Quote {symbol}: {outcome.error}", style="red"))
        self._show_quote()

    def _show_quote(self) -> None:
        symbol = self.query_one("#ticket-symbol", Input).value.strip().upper()
        latest = self.session.store.quotes.latest(symbol) if symbol else None
        if latest is None:
            return
        age = latest.age_at(self.session.clock.now_ms())
        state = freshness(age)
        note = QUOTE_NOTE[state]
        set_line(self.query_one("#ticket-quote", Static), Text.assemble(
            ("Quote ", "dim"), (symbol, "bold"), " ", (fmt.money(latest.price), "bold"),
            ("  age ", "dim"), (fmt.age(age), FRESHNESS_STYLE[state]), f" ({note})"))
        self._show_estimate()

    def preview(self) -> Preview | None:
        """The order as typed, at the last quote seen (None while the entry is incomplete)."""
        try:
            symbol, amount = self._entered()
        except IntentError:
            return None
        latest = self.session.store.quotes.latest(symbol)
        return Preview.of_account(self.side, symbol, amount, latest.price if latest else None,
                                  self.session.store.summary)

    def _show_estimate(self) -> None:
        if self.state != TicketState.ENTRY:
            return
        estimate = self.query_one("#ticket-estimate", Static)
        warning = self.query_one("#ticket-warning", Static)
        preview = self.preview()
        go = self.query_one("#ticket-go", Button)
        if preview is None:
            set_line(estimate, "")
            set_line(warning, "")
            go.disabled = False
            return
        text = Text(preview.estimate_text(), style="bold")
        if text:
            text.append("\n")
        text.append(preview.requirement_text(),
                    style="bold red" if preview.blocked else "dim")
        set_line(estimate, text)
        set_line(warning, preview.warning())
        go.disabled = preview.blocked
        self._hint("Change the amount, or Esc to close." if preview.blocked
                   else "Enter places the order; Esc closes.")

    # --- keys -----------------------------------------------------------------------------

    def action_enter(self) -> None:
        action = self.ticket.on_enter()
        if action == KeyAction.PLACE:
            self._place()
        elif action == KeyAction.COMMIT:
            self._settle(action)

    def action_escape(self) -> None:
        action = self.ticket.on_escape()
        if action == KeyAction.CANCEL:
            self._settle(action)
        elif action == KeyAction.CLOSE:
            self.ticket.close()
            self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ticket-go":
            self.action_enter()
        else:
            self.action_escape()

    # --- placing and settling -------------------------------------------------------------

    @work(exclusive=True, group="ticket")
    async def _place(self) -> None:
        try:
            symbol, amount = self._entered()
        except IntentError as exc:
            self._error(str(exc))
            return
        preview = self.preview()
        if preview is not None and preview.blocked:
            # The account may have changed since it was last seen (no polling): look again.
            await self.session.refresh_summary()
            self._show_estimate()
            preview = self.preview()
        if preview is not None and preview.blocked:
            self._error(preview.not_placed_text())
            self._hint("Change the amount and press Enter, or Esc to close.")
            return
        if self.state != TicketState.ENTRY:
            return
        self.ticket.place()
        self._error("")
        self._hint(f"Placing {self.side.upper()} …")
        outcome = await self.session.place(self.side, symbol, amount)
        if not outcome.ok:
            self.ticket.refused()
            self._error(outcome.error)
            self._hint("Fix it and press Enter again, or Esc to close.")
            return
        try:
            order = self.ticket.placed(outcome.txn, outcome.result)
        except ReplyShapeError as exc:
            self._error(f"bad_reply: {exc}")
            return
        set_line(self.query_one("#ticket-warning", Static), "")
        set_line(self.query_one("#ticket-estimate", Static), "")
        set_line(self.query_one("#ticket-order", Static), Text(order.describe(), style="bold"))
        for widget_id in ("#ticket-symbol", "#ticket-amount"):
            self.query_one(widget_id, Input).disabled = True
        self.query_one("#ticket-progress").display = True
        self.query_one("#ticket-go", Button).label = "Commit (⏎)"
        self.query_one("#ticket-stop", Button).label = f"Cancel {self.side.upper()} (Esc)"
        self.query_one("#ticket-go", Button).focus()
        self._tick()

    @work(exclusive=True, group="ticket")
    async def _settle(self, action: KeyAction) -> None:
        blocker = self.ticket.settle_blocker(action, self.session.store.newest_pending(self.side))
        if blocker:
            self._error(blocker)
            return
        self.ticket.settle()
        self._error("")
        self._hint(SETTLING[action])
        outcome = await self.session.settle(action, self.side)
        if outcome.ok:
            toast = self.ticket.settled(action, outcome.result)
        else:
            toast = self.ticket.settle_failed(action, outcome.code, outcome.error)
            if toast is None:
                self._error(outcome.error)
        if self.state == TicketState.DONE and toast is not None:
            self._close(toast)
            return
        if toast is not None:
            self.notify(toast.message, severity=toast.severity)
        self._hint("Enter commits; Esc cancels.")

    def server_expired(self, event: dict[str, Any]) -> bool:
        """The server pushed `pending_expired`; True when it was this ticket's order."""
        toast = self.ticket.expired_by_server(event)
        if toast is None:
            return False
        self._close(toast)
        return True

    # --- ticking --------------------------------------------------------------------------

    def _tick(self) -> None:
        self._show_quote()  # the quote's age keeps counting in every state
        countdown = self.ticket.tick(self.server_now_ms())
        if countdown is None:
            return
        self.query_one("#ticket-progress", ProgressBar).update(progress=max(0, countdown.left_ms))
        self._hint(countdown.hint)
        if countdown.check_expiry:
            self._confirm_expiry()

    @work(exclusive=True, group="ticket-expiry")
    async def _confirm_expiry(self) -> None:
        await self.session.refresh_summary()
        summary = self.session.store.summary
        pending = summary.pending_buys if self.side == "buy" else summary.pending_sells
        toast = self.ticket.expired_unannounced(pending)
        if toast is not None:
            self._close(toast)

    # --- helpers --------------------------------------------------------------------------

    def _close(self, toast: Toast) -> None:
        self.app.notify(toast.message, severity=toast.severity)
        self.dismiss(None)

    def _error(self, text: str) -> None:
        set_line(self.query_one("#ticket-error", Static), text)

    def _hint(self, text: str) -> None:
        set_content(self.query_one("#ticket-hint", Static), text)
