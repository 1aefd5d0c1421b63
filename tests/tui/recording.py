"""Record real server replies for the screenshot tests' RecordedClient.

Run `python -m tests.tui.recording` to refresh tests/tui/recorded/alice.json: it starts the real
system with fixed prices, plays one session of user `alice` and stores every request line with
the reply the server gave, plus the time the screenshots freeze the clock at.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from protocol.client import DaytradeClient
from tests.support.system import RunningSystem

RECORDING = Path(__file__).with_name("recorded") / "alice.json"
PRICES = {"ABC": 1234, "DEF": 4567, "XYZ": 500, "QRS": 8800}
USER, PASSWORD = "alice", "correct horse"

SETUP = [
    "ADD,alice,10000.00",
    "BUY,alice,ABC,1000.00", "COMMIT_BUY,alice",
    "BUY,alice,DEF,500.00", "COMMIT_BUY,alice",
    "SELL,alice,ABC,100.00", "COMMIT_SELL,alice",
    "SET_BUY_AMOUNT,alice,XYZ,200.00", "SET_BUY_TRIGGER,alice,XYZ,4.50",
    "SET_SELL_AMOUNT,alice,ABC,150.00", "SET_SELL_TRIGGER,alice,ABC,15.00",
    "SET_BUY_AMOUNT,alice,QRS,100.00",
    "BUY,alice,XYZ,50.00",
    "SELL,alice,DEF,91.34",
]
#: Replayed by the screenshots: their replies are what the dashboard shows.
REPLAYED = ["DISPLAY_SUMMARY,alice", "QUOTE,alice,ABC", "QUOTE,alice,DEF", "QUOTE,alice,XYZ",
            "QUOTE,alice,QRS"]
#: Placed last (after the summary), so the ticket screenshot shows a live countdown.
TICKET = ["BUY,alice,ABC,100.00"]


async def _play(system: RunningSystem) -> dict:
    client = await DaytradeClient.connect(system.host, system.port)
    await client.login(USER, PASSWORD)
    await client.close()
    client = await DaytradeClient.connect(system.host, system.port)
    replies: dict[str, dict] = {}
    login = await client.login(USER, PASSWORD)  # signed_up false: no sign-up toast
    replies[f"LOGIN,{USER},{PASSWORD}"] = json.loads(login.to_json())
    for line in SETUP:
        reply = await client.send(line)
        assert reply.ok, (line, reply)
        replies[line] = json.loads(reply.to_json())
    for line in REPLAYED + TICKET:
        reply = await client.send(line)
        assert reply.ok, (line, reply)
        replies[line] = json.loads(reply.to_json())
    summary_txn = replies["DISPLAY_SUMMARY,alice"]["result"]
    newest = max(t["time"] for t in summary_txn["transactions"])
    await client.close()
    # Frozen "now": 15 s after the newest transaction (countdowns show about 0:45 left).
    return {"now_ms": newest + 15_000, "user": USER, "password": PASSWORD, "replies": replies}


def record() -> None:
    with tempfile.TemporaryDirectory() as tmp, \
            RunningSystem(Path(tmp) / "data", prices=PRICES, quote_latency="fixed:5") as system:
        data = asyncio.run(_play(system))
    RECORDING.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RECORDING}")


if __name__ == "__main__":
    record()
