"""Start `daytrade shard` and `daytrade quotes` processes on 127.0.0.1 for tests of remote
shards, each in its own process group so that teardown reaps everything it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

SHARD_READY = re.compile(r"listening on ([\d.]+):(\d+)")
QUOTES_READY = re.compile(r"listening on ([\d.]+):(\d+)")


def _read_ready(process: subprocess.Popen[str], pattern: re.Pattern[str], what: str,
                timeout: float) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode}")
            continue
        m = pattern.search(line)
        if m:
            return m.group(1), int(m.group(2))
    raise RuntimeError(f"{what} did not start in time")


def _stop(process: subprocess.Popen[str] | None, timeout: float = 20.0) -> int | None:
    if process is None:
        return None
    code = process.poll()
    if code is None:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if code is None:
        code = process.wait(5)
    if process.stdout is not None:
        process.stdout.close()
    return code


class QuoteProcess:
    """`daytrade quotes` at fixed prices (cents per symbol)."""

    def __init__(self, workdir: Path, prices: dict[str, int]) -> None:
        prices_file = workdir / "quote-prices.json"
        prices_file.write_text(json.dumps(prices))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daytrade", "quotes", "--port", "0", "--latency", "fixed:5",
             "--prices", str(prices_file)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        self.host, self.port = _read_ready(self.process, QUOTES_READY, "daytrade quotes", 60)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        _stop(self.process)


class ShardProcess:
    """`daytrade shard --index K --of N` on 127.0.0.1 (port 0: any free port, or a given one
    to come back on after a kill)."""

    def __init__(self, workdir: Path, index: int, count: int, secret: Path, quotes: str, *,
                 port: int = 0, data_dir: Path | None = None,
                 extra_args: list[str] | None = None) -> None:
        self.index = index
        self.data_dir = data_dir or workdir / f"shard-{index}"
        self.log_path = workdir / f"shard-{index}.log"
        self.args = [sys.executable, "-m", "daytrade", "shard", "--index", str(index), "--of",
                     str(count), "--listen", f"127.0.0.1:{port}", "--data-dir",
                     str(self.data_dir), "--cluster-secret", str(secret), "--quote-server",
                     quotes, "--no-redis", "--sweep-interval", "3600", *(extra_args or [])]
        self.process: subprocess.Popen[str] | None = None
        self.port = port

    def start(self, timeout: float = 60.0) -> ShardProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log,
                                            text=True, start_new_session=True)
        _, self.port = _read_ready(self.process, SHARD_READY, f"shard {self.index}", timeout)
        return self

    def run_to_exit(self, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a process that is expected to stop by itself (a fenced second shard)."""
        return subprocess.run(self.args, capture_output=True, text=True, timeout=timeout)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no clean stop, no final snapshot."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        self.process.stdout.close()
        self.process = None

    def stop(self) -> int | None:
        code = _stop(self.process)
        self.process = None
        return code
