"""`daytrade tui --demo`: an embedded `daytrade up` subprocess and a funded demo account.

The server runs in its own session (process group) with a temporary data directory, so that
stopping it takes its shards, quote simulator and Redis with it and leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import secrets
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from protocol.client import DaytradeClient
from protocol.commands import Add

READY = re.compile(r"daytrade listening on ([\w.:-]+?):(\d+)\b")
#: Money the operator adds to the demo account.
DEMO_CASH = 10_000_00
#: Symbols on the demo watchlist.
DEMO_WATCHLIST = ("ABC", "DEF", "XYZ", "QRS")


class EmbeddedServerError(RuntimeError):
    """`daytrade up` did not start; the message carries the end of its log."""


class EmbeddedServer:
    """A `daytrade up --port 0` child on a temporary data directory; a context manager."""

    def __init__(self, *, quote_latency: str = "fixed:20", start_timeout: float = 60.0,
                 extra_args: tuple[str, ...] = ()) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="daytrade-demo-")
        self.data_dir = Path(self._tmp.name) / "data"
        self.log_path = Path(self._tmp.name) / "up.log"
        self.args = [sys.executable, "-m", "daytrade", "up", "--port", "0", "--data-dir",
                     str(self.data_dir), "--quote-latency", quote_latency, *extra_args]
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.host = "127.0.0.1"
        self.port = 0

    @property
    def token(self) -> str:
        return (self.data_dir / "operator.token").read_text().strip()

    def start(self) -> EmbeddedServer:
        """Start it and wait for its `daytrade listening on HOST:PORT` line."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log,
                                            start_new_session=True)
        try:
            self.host, self.port = self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> tuple[str, int]:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=0.2):
                    if self.process.poll() is not None:
                        break
                    continue
                chunk = os.read(self.process.stdout.fileno(), 4096)
                if not chunk:
                    break
                buffer += chunk
                match = READY.search(buffer.decode("utf-8", "replace"))
                if match:
                    return match.group(1), int(match.group(2))
        try:
            code: int | None = self.process.wait(5)  # its output ended: it is exiting
        except subprocess.TimeoutExpired:
            code = None
        state = f"exited with {code}" if code is not None else "did not start in time"
        raise EmbeddedServerError(f"daytrade up {state}: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a clean stop), then SIGKILL whatever is left of its process group."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.wait(5)
            if process.stdout is not None:
                process.stdout.close()
        self._tmp.cleanup()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """Who the demo logs in as, and the operator token that funds them."""

    host: str
    port: int
    token: str
    user: str = "demo"
    password: str = ""
    cash: int = DEMO_CASH
    watchlist: tuple[str, ...] = DEMO_WATCHLIST

    @classmethod
    def for_server(cls, server: EmbeddedServer, user: str = "demo") -> DemoAccount:
        return cls(server.host, server.port, server.token, user, secrets.token_urlsafe(12))


class FundingError(RuntimeError):
    """The operator could not fund the demo account (code: message)."""


async def fund(account: DemoAccount) -> str:
    """As the operator (a second connection), ADD the demo cash; returns the new cash."""
    async with await DaytradeClient.connect(account.host, account.port) as operator:
        auth = await operator.auth(account.token)
        if not auth.ok:
            raise FundingError(f"AUTH failed: {auth.code}: {auth.message}")
        added = await operator.send(Add(account.user, account.cash).line())
        if not added.ok:
            raise FundingError(f"ADD failed: {added.code}: {added.message}")
        return str((added.result or {}).get("cash", ""))
