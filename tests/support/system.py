"""Start the real `daytrade up` (a child process on 127.0.0.1, free ports) for end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

READY = re.compile(r"daytrade listening on ([\d.]+):(\d+)")


class RunningSystem:
    """`daytrade up` in its own process group, so that teardown reaps every process it started."""

    def __init__(self, data_dir: Path, *, prices: dict[str, int] | None = None, shards: int = 2,
                 quote_latency: str = "fixed:5", sweep_interval: float = 0.5,
                 extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                 start_timeout: float = 60.0) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.prices_file = self.data_dir.parent / f"{self.data_dir.name}-prices.json"
        self.set_prices(prices or {})
        self.args = [sys.executable, "-m", "daytrade", "up", "--port", "0", "--data-dir",
                     str(self.data_dir), "--shards", str(shards), "--quote-latency",
                     quote_latency, "--quote-prices", str(self.prices_file),
                     "--sweep-interval", str(sweep_interval), *(extra_args or [])]
        self.env = dict(os.environ, **(env or {}))
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[str] | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.token = ""

    def set_prices(self, prices: dict[str, int]) -> None:
        """Fix the simulator's prices (cents); it re-reads the file when it changes."""
        tmp = self.prices_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(prices))
        os.replace(tmp, self.prices_file)
        # mtime granularity: make sure a quick second write is seen as a change
        stamp = time.time()
        os.utime(self.prices_file, (stamp, stamp))

    def start(self) -> RunningSystem:
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                        stderr=open(self.data_dir.parent / (  # noqa: SIM115
                                            self.data_dir.name + "-up.log"), "ab"),
                                        text=True, env=self.env, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                if self.process.poll() is not None:
                    raise RuntimeError(f"daytrade up exited with {self.process.returncode}: "
                                       f"{self.log_tail()}")
                continue
            m = READY.search(line)
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
                self.token = (self.data_dir / "operator.token").read_text().strip()
                return self
        self.stop()
        raise RuntimeError("daytrade up did not start in time: " + self.log_tail())

    def log_tail(self) -> str:
        path = self.data_dir.parent / (self.data_dir.name + "-up.log")
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (a clean stop), then SIGKILL whatever of the process group is left."""
        if self.process is None:
            return None
        code = self.process.poll()
        if code is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                code = None
        self._kill_group()
        if code is None:
            code = self.process.wait(5)
        self.process.stdout.close()
        self.process = None
        return code

    def kill(self) -> None:
        """SIGKILL `daytrade up` itself (its shards notice and exit)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self._kill_group()
            self.process.stdout.close()
            self.process = None

    def _kill_group(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> RunningSystem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
