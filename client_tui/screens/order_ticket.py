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
from client_tui.model.intents import IntentError, parse_amount, parse_symbol
from client_tui.model.quotes import Freshness, freshness
from client_tui.model.summary import ReplyShapeError, cents
from client_tui.model.ticket import (
    Preview,
    TicketFlow,
    TicketState,
    shares_text,
)
from client_tui.screens.keys import FIELD_KEYS, deliver_early_key
from client_tui.session import TradingSession
from client_tui.widgets.cells import FRESHNESS_STYLE
from client_tui.widgets.text import set_content, set_line
from protocol.limits import PENDING_LIFETIME_MS

#: After the countdown ends, wait this long for `pending_expired` before asking the server.
EXPIRY_GRACE_MS = 3_000

VERB = {"buy": ("Bought", "cost"), "sell": ("Sold", "proceeds")}
ING = {"commit": "Committing", "cancel": "Cancelling"}


class OrderTicket(ModalScreen[None]):
    """One BUY or SELL from entry to commit, cancel or expiry."""

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
        self.flow = TicketFlow()
        self.order: dict[str, Any] = {}
        self.txn: int | None = None
        self.expires_at = 0
        self._checked_expiry = False
        #: The field focused as the ticket shows (a later focus() could undo fast typing).
        self.AUTO_FOCUS = "#ticket-amount" if symbol else "#ticket-symbol"

    @property
    def state(self) -> TicketState:
        """`entry`, `placing`, `pending`, `settling` or `done` (a str enum)."""
        return self.flow.state

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="ticket-box"):
            yield Static(Text(f" {self.side.upper()} ", style="bold reverse"), id="ticket-title")
            with Horizontal(classes="field-row"):
                yield Label("Symbol", classes="field-label")
                yield Input(self._symbol, id="ticket-symbol", max_length=3,
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
        symbol = parse_symbol(self.query_one("#ticket-symbol", Input).value)
        amount_text = self.query_one("#ticket-amount", Input).value
        if not amount_text.strip():
            raise IntentError("enter an amount in dollars")
        return symbol, parse_amount(amount_text)

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
        note = {Freshness.FRESH: "backs an order", Freshness.AGING: "about to expire",
                Freshness.STALE: "expired: the order will get a new quote"}[state]
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
        summary = self.session.store.summary
        return Preview(self.side, amount, latest.price if latest else None, summary.cash,
                       summary.holdings.get(symbol, 0))

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
        action = self.flow.on_enter()
        if action == "place":
            self._place()
        elif action == "commit":
            self._settle("commit")

    def action_escape(self) -> None:
        action = self.flow.on_escape()
        if action == "cancel":
            self._settle("cancel")
        elif action == "close":
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
            self._error(f"Not placed — {preview.warning() or preview.requirement_text()}")
            self._hint("Change the amount and press Enter, or Esc to close.")
            return
        if self.state != TicketState.ENTRY:
            return
        self.flow.fire("place")
        self._error("")
        self._hint(f"Placing {self.side.upper()} …")
        outcome = await self.session.place(self.side, symbol, amount)
        if not outcome.ok:
            self.flow.fire("refused")
            self._error(outcome.error)
            self._hint("Fix it and press Enter again, or Esc to close.")
            return
        try:
            self.expires_at = int(outcome.result["expires_at"])
            price = cents(outcome.result["price"])
        except (KeyError, TypeError, ValueError, ReplyShapeError) as exc:
            self._error(f"bad_reply: {exc}")
            self.flow.fire("broken")
            return
        self.order = dict(outcome.result)
        self.txn = outcome.txn
        self.flow.fire("placed")
        value = outcome.result.get("cost") or outcome.result.get("proceeds") or "0.00"
        try:
            shown_value = fmt.money(cents(value))
            shares = shares_text(int(outcome.result.get("shares", 0)))
        except (ReplyShapeError, TypeError, ValueError):
            shown_value, shares = str(value), f"{outcome.result.get('shares')} shares"
        set_line(self.query_one("#ticket-warning", Static), "")
        set_line(self.query_one("#ticket-estimate", Static), "")
        set_line(self.query_one("#ticket-order", Static), Text.assemble(
            (f"Pending {self.side.upper()} #{self.txn}: ", "bold"),
            (f"{shares} of {symbol} @ {fmt.money(price)} = {shown_value}", "bold")))
        for widget_id in ("#ticket-symbol", "#ticket-amount"):
            self.query_one(widget_id, Input).disabled = True
        self.query_one("#ticket-progress").display = True
        self.query_one("#ticket-go", Button).label = "Commit (⏎)"
        self.query_one("#ticket-stop", Button).label = f"Cancel {self.side.upper()} (Esc)"
        self.query_one("#ticket-go", Button).focus()
        self._tick()

    @work(exclusive=True, group="ticket")
    async def _settle(self, action: str) -> None:
        newest = self.session.store.newest_pending(self.side)
        if newest is not None and newest.expires_at > self.expires_at:
            self._error(f"a newer {self.side.upper()} #{newest.txn} is pending: the server would "
                        f"{action} that one first; settle it in Orders (3)")
            return
        self.flow.fire("settle")
        self._error("")
        self._hint(ING[action] + " …")
        outcome = await self.session.settle(action, self.side)
        if outcome.ok:
            self._settled(action, outcome.result)
            return
        if outcome.code in ("no_pending_buy", "no_pending_sell"):
            self._close(f"{action.upper()} {self.side.upper()} #{self.txn} failed: "
                        f"{outcome.error}", "error")
            return
        self.flow.fire("kept")
        self._error(outcome.error)
        self._hint("Enter commits; Esc cancels.")

    def _settled(self, action: str, result: dict[str, Any]) -> None:
        mine = all(result.get(k) == self.order.get(k) for k in ("symbol", "shares", "price"))
        what = (f"{result.get('shares')} {result.get('symbol')} @ "
                f"{fmt.money_text(result.get('price'))}")
        if not mine:
            # The server settled a newer order of this side: ours is still pending.
            self.flow.fire("kept")
            self.notify(f"{action.upper()}_{self.side.upper()} settled a newer order ({what}); "
                        f"this ticket's #{self.txn} is still pending", severity="warning")
            self._hint("Enter commits; Esc cancels.")
            return
        if action == "commit":
            verb, field = VERB[self.side]
            self._close(f"{verb} {what} ({field} {fmt.money_text(result.get(field, ''))})",
                        "information")
        else:
            self._close(f"Cancelled {self.side.upper()} of {what}", "information")

    def server_expired(self, event: dict[str, Any]) -> bool:
        """The server pushed `pending_expired`; True when it was this ticket's order."""
        alive = self.state in (TicketState.PENDING, TicketState.SETTLING)
        if not alive or event.get("txn") != self.txn:
            return False
        self._close(f"{self.side.upper()} #{self.txn} expired: {event.get('shares')} "
                    f"{event.get('symbol')} @ {fmt.money_text(event.get('price'))} released "
                    f"(cash {fmt.money_text(event.get('cash'))})", "warning")
        return True

    # --- ticking --------------------------------------------------------------------------

    def _tick(self) -> None:
        self._show_quote()  # the quote's age keeps counting in every state
        if self.state not in (TicketState.PENDING, TicketState.SETTLING):
            return
        left = self.expires_at - self.server_now_ms()
        self.query_one("#ticket-progress", ProgressBar).update(progress=max(0, left))
        if left > 0:
            self._hint(f"Expires in {fmt.countdown(left)} — Enter commits · Esc cancels")
            return
        self._hint("Expired by the server's clock; waiting for its confirmation …")
        if left < -EXPIRY_GRACE_MS and not self._checked_expiry:
            self._checked_expiry = True
            self._confirm_expiry()

    @work(exclusive=True, group="ticket-expiry")
    async def _confirm_expiry(self) -> None:
        await self.session.refresh_summary()
        summary = self.session.store.summary
        pending = summary.pending_buys if self.side == "buy" else summary.pending_sells
        if self.state == TicketState.PENDING and all(o.txn != self.txn for o in pending):
            self._close(f"{self.side.upper()} #{self.txn} expired", "warning")

    # --- helpers --------------------------------------------------------------------------

    def _close(self, message: str, severity: str) -> None:
        self.flow.finish()
        self.app.notify(message, severity=severity)  # type: ignore[arg-type]
        self.dismiss(None)

    def _error(self, text: str) -> None:
        set_line(self.query_one("#ticket-error", Static), text)

    def _hint(self, text: str) -> None:
        set_content(self.query_one("#ticket-hint", Static), text)
