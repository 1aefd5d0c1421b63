"""A per-user closed-loop workload client for end-to-end tests.

Each user's next command goes out only after the previous reply, and `internal` (or a lost
connection) is retried with the same txn."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

from bench.workload import WorkloadLine
from protocol.client import ConnectionLost, DaytradeClient
from protocol.replies import Reply


class ClosedLoopReplay:
    """Replays workload lines user by user (users concurrently), retrying `internal` replies."""

    def __init__(self, host: str, port: int, token: str, *, connections: int = 4) -> None:
        self.host, self.port, self.token = host, port, token
        self.connections = connections
        self.replies: dict[int, Reply] = {}  # txn -> final reply
        self.retries = 0
        self.progress = 0
        self._clients: list[DaytradeClient | None] = [None] * connections

    async def _client(self, slot: int) -> DaytradeClient:
        client = self._clients[slot]
        if client is None or client.closed:
            client = await DaytradeClient.connect(self.host, self.port, timeout=60)
            reply = await client.auth(self.token)
            assert reply.ok, reply
            self._clients[slot] = client
        return client

    async def _send(self, slot: int, item: WorkloadLine) -> Reply:
        for _ in range(200):
            try:
                client = await self._client(slot)
                reply = await client.send(item.text, txn=item.txn)
            except (ConnectionLost, ConnectionError, OSError):
                self.retries += 1
                await asyncio.sleep(0.1)
                continue
            if not reply.ok and reply.code.value in ("internal", "busy"):
                self.retries += 1
                await asyncio.sleep(0.1)
                continue
            return reply
        raise AssertionError(f"no final reply for {item}")

    async def run(self, items: list[WorkloadLine],
                  on_progress: Callable[[int], object] | None = None) -> None:
        by_user: dict[str | None, list[WorkloadLine]] = defaultdict(list)
        for item in items:
            by_user[item.user].append(item)

        async def user_loop(index: int, lines: list[WorkloadLine]) -> None:
            slot = index % self.connections
            for item in lines:
                self.replies[item.txn] = await self._send(slot, item)
                self.progress += 1
                if on_progress is not None:
                    result = on_progress(self.progress)
                    if asyncio.iscoroutine(result):
                        await result

        await asyncio.gather(*(user_loop(i, lines)
                               for i, lines in enumerate(by_user.values())))

    async def close(self) -> None:
        for client in self._clients:
            if client is not None:
                await client.close()
