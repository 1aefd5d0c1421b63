"""The system's parts started on the hosts of a `Network`: Redis, the quote simulator, shards
(`daytrade shard`) and the gateway (`daytrade up --shard ...`), each in its host's namespace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.netns import Host, wait_for_line
from server.quotes.redis_server import redis_server_binary

START_TIMEOUT = 60.0
SHARD_PORT = 7000
GATEWAY_PORT = 4000


def _log(directory: Path, name: str):
    directory.mkdir(parents=True, exist_ok=True)
    return open(directory / f"{name}.log", "ab")  # noqa: SIM115 (the child holds it)


def start_redis(host: Host, logs: Path) -> str:
    """A redis-server (cache only, no persistence) on `host`; its URL."""
    process = host.popen([str(redis_server_binary()), "--bind", host.address, "--port", "6379",
                          "--protected-mode", "no", "--save", "", "--appendonly", "no",
                          "--dir", str(logs), "--logfile", ""],
                         stdout=subprocess.PIPE, stderr=_log(logs, "redis"))
    wait_for_line(process, r"Ready to accept connections", START_TIMEOUT)
    return f"redis://{host.address}:6379/0"


def start_quotes(host: Host, prices_file: Path, logs: Path, latency: str = "fixed:5",
                 seed: int = 468) -> str:
    """The quote simulator on `host`, quoting the prices in `prices_file` (others from `seed`,
    `daytrade up`'s default); its HOST:PORT."""
    process = host.popen([sys.executable, "-m", "daytrade", "quotes", "--host", host.address,
                          "--port", "4444", "--latency", latency, "--seed", str(seed),
                          "--prices", str(prices_file)],
                         stdout=subprocess.PIPE, stderr=_log(logs, "quotes"))
    wait_for_line(process, r"listening on", START_TIMEOUT)
    return f"{host.address}:4444"


def shard_args(host: Host, index: int, count: int, data_dir: Path, secret: Path, quotes: str,
               redis_url: str | None, extra: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "daytrade", "shard", "--index", str(index), "--of", str(count),
            "--listen", f"{host.address}:{SHARD_PORT}", "--data-dir", str(data_dir),
            "--cluster-secret", str(secret), "--quote-server", quotes,
            *(["--redis-url", redis_url] if redis_url else ["--no-redis"]), *(extra or [])]


def start_shard(host: Host, index: int, count: int, data_dir: Path, secret: Path, quotes: str,
                redis_url: str | None, logs: Path,
                extra: list[str] | None = None) -> subprocess.Popen:
    """`daytrade shard` K of N on `host`, returned once it listens (it has recovered)."""
    process = host.popen(shard_args(host, index, count, data_dir, secret, quotes, redis_url,
                                    extra),
                         stdout=subprocess.PIPE, stderr=_log(logs, f"shard-{index}-{host.name}"))
    wait_for_line(process, r"listening on", START_TIMEOUT)
    return process


class Gateway:
    """`daytrade up` on a host, connected to shards on other hosts."""

    def __init__(self, host: Host, data_dir: Path, secret: Path, shards: list[str], logs: Path,
                 extra: list[str] | None = None) -> None:
        self.host = host
        self.data_dir = data_dir
        args = [sys.executable, "-m", "daytrade", "up", "--host", host.address, "--port",
                str(GATEWAY_PORT), "--data-dir", str(data_dir), "--cluster-secret", str(secret)]
        for index, address in enumerate(shards):
            args += ["--shard", f"{index}={address}"]
        self.process = host.popen([*args, *(extra or [])], stdout=subprocess.PIPE,
                                  stderr=_log(logs, "gateway"))
        wait_for_line(self.process, r"daytrade listening on", START_TIMEOUT)
        self.address = host.address
        self.port = GATEWAY_PORT
        self.token = (data_dir / "operator.token").read_text().strip()
