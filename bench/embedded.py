"""Start the whole system as a `daytrade up` subprocess on a fresh data directory, and tear it down.

It runs in a session (process group) of its own, so that teardown can reap every process it
started: SIGTERM first (a clean stop), then SIGKILL to the whole group.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

READY = re.compile(r"daytrade listening on ([\w.:-]+):(\d+)")


class ServerStartError(RuntimeError):
    """`daytrade up` exited or did not say where it listens in time."""


class EmbeddedServer:
    """`daytrade up --port 0` on a temporary data directory (removed on stop unless `keep`)."""

    def __init__(self, *, quote_latency: str = "legacy", shards: int | None = None,
                 extra_args: list[str] | None = None, keep: bool = False,
                 start_timeout: float = 60.0, stop_timeout: float = 30.0,
                 python: str = sys.executable) -> None:
        self.quote_latency = quote_latency
        self.shards = shards
        self.extra_args = list(extra_args or [])
        self.keep = keep
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.python = python
        self.root: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.token = ""

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "data"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def args(self) -> list[str]:
        args = [self.python, "-m", "daytrade", "up", "--port", "0", "--data-dir",
                str(self.data_dir), "--quote-latency", self.quote_latency]
        if self.shards is not None:
            args += ["--shards", str(self.shards)]
        return args + self.extra_args

    def start(self) -> EmbeddedServer:
        self.root = Path(tempfile.mkdtemp(prefix="daytrade-bench-"))
        self.data_dir.mkdir()
        out_path, err_path = self.root / "up.out", self.root / "up.log"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            # stdout goes to a file read by polling, so the child can never block on a full pipe.
            self.process = subprocess.Popen(self.args(), stdout=out, stderr=err,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while True:
            m = READY.search(out_path.read_text(errors="replace"))
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
                break
            if self.process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise ServerStartError(f"daytrade up exited with {self.process.returncode}: "
                                       f"{tail}")
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise ServerStartError(f"daytrade up did not start within "
                                       f"{self.start_timeout:.0f} s: {tail}")
            time.sleep(0.05)
        self.token = (self.data_dir / "operator.token").read_text().strip()
        return self

    def log_tail(self, size: int = 3000) -> str:
        if self.root is None:
            return ""
        path = self.root / "up.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    def stop(self) -> int | None:
        """Stop the server and its children; returns its exit code (None if it had to be killed)."""
        code = None
        if self.process is not None:
            code = self.process.poll()
            if code is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    code = self.process.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    code = None
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if code is None:
                self.process.wait(10)
        if self.root is not None and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        return code

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
