"""The replay loop against a recording line server on 127.0.0.1 (real sockets, real client)."""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from pathlib import Path

import pytest

from bench.metrics import Recorder
from bench.plan import build_plan
from bench.runner import LOST, TIMEOUT, Replayer, ReplaySettings, close_all, connect_all
from bench.workload import read_workload


class RecordingServer:
    """Answers each `[txn] CMD,user,...` line after a short delay drawn from a seeded generator,
    and records: the order each user's txns arrived in, whether a user ever had two commands in
    flight, and the most users in flight at once on each connection."""

    def __init__(self, *, busy_once: set[int] = frozenset(), never_answer: set[int] = frozenset(),
                 close_on: set[int] = frozenset(), max_delay: float = 0.002,
                 seed: int = 0) -> None:
        self.busy_once = set(busy_once)
        self.never_answer = set(never_answer)
        self.close_on = set(close_on)
        self.max_delay = max_delay
        self._delays = random.Random(seed)
        self.arrivals: dict[str, list[int]] = defaultdict(list)
        self.overlaps: list[str] = []
        self.peak_users_per_connection: list[int] = []
        self.lines = 0
        self._in_flight: set[str] = set()
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def __aenter__(self) -> RecordingServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.peak_users_per_connection)
        self.peak_users_per_connection.append(0)
        active: set[str] = set()
        tasks = set()
        try:
            while line := await reader.readline():
                self.lines += 1
                text = line.decode().rstrip("\n")
                if text.startswith("AUTH,"):
                    writer.write(b'{"txn":null,"cmd":"AUTH","ok":true,"result":{}}\n')
                    continue
                txn = int(text[1:text.index("]")])
                name, _, rest = text[text.index("]") + 2:].partition(",")
                user = rest.split(",")[0]
                if txn in self.close_on:
                    writer.close()
                    return
                if user in self._in_flight:
                    self.overlaps.append(user)
                self._in_flight.add(user)
                active.add(user)
                self.peak_users_per_connection[index] = max(
                    self.peak_users_per_connection[index], len(active))
                self.arrivals[user].append(txn)
                task = asyncio.ensure_future(self._answer(writer, txn, name, user, active))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (ConnectionError, ValueError):
            pass

    async def _answer(self, writer, txn, name, user, active) -> None:
        await asyncio.sleep(self._delays.uniform(0, self.max_delay))
        self._in_flight.discard(user)
        active.discard(user)
        if txn in self.never_answer:
            return
        if txn in self.busy_once:
            self.busy_once.discard(txn)
            reply = {"txn": txn, "cmd": name, "ok": False,
                     "error": {"code": "busy", "message": "retry"}}
        elif name == "BUY":
            reply = {"txn": txn, "cmd": name, "ok": False,
                     "error": {"code": "insufficient_funds", "message": "no"}}
        else:
            reply = {"txn": txn, "cmd": name, "ok": True, "result": {}}
        if not writer.is_closing():
            writer.write(json.dumps(reply).encode() + b"\n")


def _workload(tmp_path: Path, users: int, per_user: int) -> Path:
    lines, txn = [], 0
    for round_ in range(per_user):
        for u in range(users):
            txn += 1
            command = f"BUY,u{u},ABC,1.00" if round_ % 3 == 2 else f"ADD,u{u},1.00"
            lines.append(f"[{txn}] {command}")
    lines.append(f"[{txn + 1}] DUMPLOG,./x")
    path = tmp_path / "w.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


async def _replay(server, plan, settings, token="t"):
    clients = await connect_all("127.0.0.1", server.port, settings.connections, token,
                                timeout=settings.timeout)
    try:
        replayer = Replayer(plan, clients, settings, Recorder(plan.kinds))
        wall = await asyncio.wait_for(replayer.run(), 60)
        return replayer, wall
    finally:
        await close_all(clients)


async def test_each_user_s_commands_arrive_in_file_order_one_at_a_time(tmp_path):
    plan = build_plan(read_workload(_workload(tmp_path, users=12, per_user=20)))
    async with RecordingServer() as server:
        replayer, _ = await _replay(server, plan, ReplaySettings(connections=3))
    for script in plan.users:
        assert server.arrivals[script.user] == list(script.txns)
    assert server.overlaps == []


async def test_every_command_gets_exactly_one_answer(tmp_path):
    plan = build_plan(read_workload(_workload(tmp_path, users=5, per_user=30)))
    async with RecordingServer() as server:
        replayer, _ = await _replay(server, plan, ReplaySettings(connections=2))
    assert replayer.recorder.done == plan.commands == 150
    assert replayer.counters.replies == 150
    assert replayer.counters.mismatched == 0
    assert replayer.counters.unmatched_replies == replayer.counters.late_replies == 0
    assert replayer.recorder.error_summary()["by_code"] == {"insufficient_funds": 50}


async def test_dumplog_is_not_sent_by_the_main_phase(tmp_path):
    plan = build_plan(read_workload(_workload(tmp_path, users=2, per_user=3)))
    async with RecordingServer() as server:
        await _replay(server, plan, ReplaySettings(connections=1))
    assert server.lines == 1 + 6  # AUTH and the six trading commands


async def test_in_flight_caps_the_users_going_at_once_per_connection(tmp_path):
    plan = build_plan(read_workload(_workload(tmp_path, users=12, per_user=10)))
    async with RecordingServer(max_delay=0.005) as server:
        await _replay(server, plan, ReplaySettings(connections=2, in_flight=2))
    assert max(server.peak_users_per_connection) == 2
    assert all(server.arrivals[s.user] == list(s.txns) for s in plan.users)


async def test_all_users_go_at_once_by_default(tmp_path):
    plan = build_plan(read_workload(_workload(tmp_path, users=8, per_user=5)))
    async with RecordingServer(max_delay=0.02) as server:
        await _replay(server, plan, ReplaySettings(connections=1))
    assert server.peak_users_per_connection == [8]


async def test_a_busy_answer_is_retried_and_not_counted_as_an_error(tmp_path):
    plan = build_plan(read_workload(_workload(tmp_path, users=2, per_user=3)))
    async with RecordingServer(busy_once={1, 4}) as server:
        replayer, _ = await _replay(server, plan, ReplaySettings(connections=1))
    assert replayer.counters.busy_retries == 2
    assert server.arrivals["u0"] == [1, 1, 3, 5]
    assert replayer.recorder.done == 6
    assert "busy" not in replayer.recorder.error_summary()["by_code"]


async def test_open_loop_keeps_per_user_order_and_the_schedule(tmp_path):
    plan = build_plan(read_workload(_workload(tmp_path, users=4, per_user=10)))
    rate = 400.0
    async with RecordingServer(max_delay=0.01) as server:
        replayer, wall = await _replay(server, plan, ReplaySettings(connections=2, rate=rate))
    assert all(server.arrivals[s.user] == list(s.txns) for s in plan.users)
    assert server.overlaps == []
    assert replayer.recorder.done == 40
    # The last command is released (39 / 400) s after the start, and not before.
    assert wall >= 39 / rate


async def test_a_reply_that_never_comes_times_out_and_the_user_goes_on(tmp_path):
    plan = build_plan(read_workload(_workload(tmp_path, users=2, per_user=3)))
    async with RecordingServer(never_answer={3}) as server:
        replayer, _ = await _replay(server, plan, ReplaySettings(connections=1, timeout=0.3))
    assert replayer.recorder.error_summary()["by_code"][TIMEOUT] == 1
    assert server.arrivals["u0"] == [1, 3, 5]
    assert replayer.recorder.done == 6


async def test_a_lost_connection_ends_its_users_without_hanging(tmp_path):
    plan = build_plan(read_workload(_workload(tmp_path, users=2, per_user=5)))
    async with RecordingServer(close_on={3}) as server:
        replayer, _ = await _replay(server, plan, ReplaySettings(connections=1))
    assert replayer.recorder.done == 10
    assert replayer.recorder.error_summary()["by_code"][LOST] >= 1


async def test_an_auth_refusal_is_an_error(tmp_path):
    async def refuse(reader, writer):
        await reader.readline()
        writer.write(b'{"txn":null,"cmd":"AUTH","ok":false,"error":{"code":"unauthorized",'
                     b'"message":"bad token"}}\n')
        await writer.drain()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    try:
        with pytest.raises(PermissionError, match="unauthorized"):
            await connect_all("127.0.0.1", server.sockets[0].getsockname()[1], 1, "bad")
    finally:
        server.close()
        await server.wait_closed()
