"""Login / sign-up: host, port, user id and password; the first login of a new id signs it up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual import work
from textual.app import ComposeResult
from textual.containers import Center, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static

from client_tui.connection import Outcome
from client_tui.widgets.text import set_content
from protocol.limits import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH

#: Called with host, port, user, password; returns the LOGIN's outcome.
LogIn = Callable[[str, int, str, str], Awaitable[Outcome]]


class LoginScreen(Screen):
    """The first screen; errors show in plain words under the form."""

    BINDINGS = [("escape", "app.quit", "Quit")]

    def __init__(self, log_in: LogIn, host: str = "127.0.0.1", port: int = 4000,
                 user: str = "", status: str = "") -> None:
        super().__init__()
        self._log_in = log_in
        self._host, self._port, self._user = host, port, user
        self._status = status

    def compose(self) -> ComposeResult:
        # Compact enough for 80x24: labels beside their fields, host and port on one row, and
        # the status right under the password, above the button, so an error is in sight.
        with Center(), Vertical(id="login-box"):
            yield Static("daytrade", id="login-title")
            with Horizontal(classes="field-row"):
                yield Label("Host", classes="field-label login-label")
                yield Input(self._host, id="login-host")
                yield Label("Port", classes="field-label")
                yield Input(str(self._port), id="login-port", type="integer")
            with Horizontal(classes="field-row"):
                yield Label("User id", classes="field-label login-label")
                yield Input(self._user, id="login-user",
                            placeholder="your id: letters, digits, _")
            with Horizontal(classes="field-row"):
                yield Label("Password", classes="field-label login-label")
                yield Input(id="login-password", password=True,
                            placeholder=f"{PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} "
                                        "characters")
            yield Static(self._status, id="login-status")
            yield Button("Log in / sign up (⏎)", id="login-submit", variant="primary")
            yield Static("A user id that does not exist yet is signed up by its first login.",
                         classes="note")
        yield Footer()

    def on_mount(self) -> None:
        target = "#login-password" if self._user else "#login-user"
        self.query_one(target, Input).focus()
        self.query_one("#login-status").display = bool(self._status)

    def show_status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#login-status", Static)
        set_content(status, text)
        status.set_class(error, "-error")
        status.display = bool(text)
        if text:
            self.call_after_refresh(status.scroll_visible, animate=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "login-password":
            self.submit()
        else:
            self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.submit()

    def submit(self) -> None:
        host = self.query_one("#login-host", Input).value.strip()
        port_text = self.query_one("#login-port", Input).value.strip()
        user = self.query_one("#login-user", Input).value.strip()
        password = self.query_one("#login-password", Input).value
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            self.show_status("Enter a host and a port between 1 and 65535.", error=True)
            return
        if not user or not password:
            self.show_status("Enter a user id and a password.", error=True)
            return
        self._attempt(host, int(port_text), user, password)

    @work(exclusive=True, group="login")
    async def _attempt(self, host: str, port: int, user: str, password: str) -> None:
        self.query_one("#login-submit", Button).disabled = True
        self.show_status(f"Connecting to {host}:{port} …")
        try:
            outcome = await self._log_in(host, port, user, password)
        finally:
            for button in self.query("#login-submit").results(Button):
                button.disabled = False
        if not outcome.ok:
            self.show_status(f"Login failed — {outcome.error}", error=True)
