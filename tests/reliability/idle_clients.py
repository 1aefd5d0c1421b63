"""Many idle connections from a process of its own: `python -m tests.reliability.idle_clients
HOST PORT COUNT`. Opens COUNT connections, gets one PING answered on each, prints
`{"opened": n, "seconds": s}`, then waits (at most WAIT_S) until the server has closed them and
prints `{"closed": n, "seconds": s}` (seconds since the last PING was answered)."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

WAIT_S = 120.0
CONNECTING_AT_ONCE = 200


async def hold(host: str, port: int, gate: asyncio.Semaphore, opened: list[float],
               closed: list[float]) -> None:
    async with gate:
        for _ in range(50):  # the listen backlog may overflow while thousands connect
            try:
                reader, writer = await asyncio.open_connection(host, port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            return
        writer.write(b"PING\n")
        line = await reader.readline()
        if b'"pong"' not in line:
            writer.close()
            return
    opened.append(time.monotonic())
    try:
        while await asyncio.wait_for(reader.read(1024), WAIT_S):  # idle: only EOF ends it
            pass
        closed.append(time.monotonic())
    except TimeoutError:
        pass  # never closed by the server
    except OSError:
        closed.append(time.monotonic())  # reset by the server
    finally:
        writer.close()


async def main(host: str, port: int, count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, count + 1_000)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
    opened: list[float] = []
    closed: list[float] = []
    started = time.monotonic()
    tasks = [asyncio.create_task(hold(host, port, gate, opened, closed)) for _ in range(count)]
    while len(opened) < count and not all(t.done() for t in tasks):
        await asyncio.sleep(0.05)
        if time.monotonic() - started > WAIT_S:
            break
    last = max(opened, default=started)
    print(json.dumps({"opened": len(opened), "seconds": round(last - started, 3)}), flush=True)
    await asyncio.gather(*tasks)
    print(json.dumps({"closed": len(closed),
                      "seconds": round(max(closed, default=last) - last, 3)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
