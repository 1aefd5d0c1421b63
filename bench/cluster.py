"""A whole daytrade system spread over hosts: Redis, quotes, N shard hosts, a gateway host and a
client host, on one `Network`. The shards keep their journals in one directory standing in for
volumes that can be attached to another host."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from bench.hosts import SHARD_PORT, Gateway, start_quotes, start_redis, start_shard
from bench.netns import Host, Network
from protocol.client import DaytradeClient

T = TypeVar("T")


def write_secret(path: Path) -> Path:
    """A cluster secret file (32 random bytes in hex), mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode() + b"\n")
    finally:
        os.close(fd)
    return path


class Cluster:
    """The system on separate hosts; parts are stopped by the Network's close."""

    def __init__(self, network: Network, root: Path, prices: dict[str, int], shards: int = 2,
                 shard_args: list[str] | None = None, gateway_args: list[str] | None = None,
                 quotes_latency: str = "fixed:5") -> None:
        self.network = network
        self.count = shards
        self.logs = root / "logs"
        self.storage = root / "shards"  # every shard's journal files, host-independent
        self.storage.mkdir(parents=True)
        self.secret = write_secret(root / "cluster.secret")
        self.prices_file = root / "prices.json"
        self.prices_file.write_text(json.dumps(prices))
        self.shard_args = shard_args or []
        self.redis_url = start_redis(network.add_host("redis"), self.logs)
        self.quotes = start_quotes(network.add_host("quotes"), self.prices_file, self.logs,
                                   quotes_latency)
        self.shard_hosts = [network.add_host(f"shard{k}") for k in range(shards)]
        self.shards = [self.start_shard(k, host) for k, host in enumerate(self.shard_hosts)]
        self.client = network.add_host("client")
        self.gateway = Gateway(network.add_host("gateway"), root / "gateway", self.secret,
                               [f"{h.address}:{SHARD_PORT}" for h in self.shard_hosts],
                               self.logs, gateway_args)

    def start_shard(self, index: int, host: Host) -> subprocess.Popen:
        """`daytrade shard` `index` on `host`, on the shared storage, once it listens."""
        return start_shard(host, index, self.count, self.storage, self.secret, self.quotes,
                           self.redis_url, self.logs, self.shard_args)

    def kill_shard(self, index: int) -> None:
        """SIGKILL shard `index`'s process and wait for it."""
        process = self.shards[index]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop_shards(self) -> None:
        """SIGTERM every live shard (a clean stop) and wait, so its journal can be read."""
        for process in self.shards:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.shards:
            process.wait(30)

    def endpoint(self) -> tuple[str, int, str]:
        return self.gateway.address, self.gateway.port, self.gateway.token

    def on_client(self, work: Callable[[], Awaitable[T]], timeout: float = 240.0) -> T:
        """Run the coroutine `work()` on the client host (its own event loop)."""
        return self.client.run(lambda: asyncio.run(work()), timeout)

    async def operator(self) -> DaytradeClient:
        """An operator connection to the gateway (call on the client host)."""
        client = await DaytradeClient.connect(self.gateway.address, self.gateway.port,
                                              timeout=30)
        assert (await client.auth(self.gateway.token)).ok
        return client
