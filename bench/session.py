"""One bench run from start to end: target up, replay, DUMPLOG last, checks, figures, teardown.

`run_bench(options, console)` returns the report as a plain dict (what `--json` writes).
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from bench import procstats, report
from bench.calibrate import CalibrationServer
from bench.embedded import EmbeddedServer
from bench.metrics import Recorder
from bench.plan import Plan, build_plan
from bench.progress import LiveProgress
from bench.runner import Replayer, ReplaySettings, close_all, connect_all
from bench.validate import CashSummary, cash_summary, check_cash, scan_log, validation_report
from bench.workload import WorkloadLine, read_workload, resolve
from protocol.client import DaytradeClient
from protocol.errors import ErrorCode
from protocol.replies import Reply

#: Seconds between samples of the server's memory.
SAMPLE_S = 0.5
#: Samples between rescans of the server's process tree (a shard may be restarted).
RESCAN_EVERY = 10
#: The DUMPLOG the bench adds for --validate when the workload has none.
VALIDATE_DUMP_NAME = "bench-validate.xml"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class BenchError(Exception):
    """A problem the user can fix (no server there, no token file, ...), in words that say how;
    `status` is the exit status it calls for (2: bad usage)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class BenchOptions:
    """Everything `daytrade bench` was asked to do."""

    workload: str
    embedded: bool = False
    host: str = "127.0.0.1"
    port: int = 4000
    token_file: str | None = None
    replay: ReplaySettings = field(default_factory=ReplaySettings)
    quote_latency: str = "legacy"
    shards: int | None = None
    up_args: list[str] = field(default_factory=list)
    validate: bool = False
    calibrate: bool = False
    dump_to: str | None = "."
    dumplog_timeout: float = 3600.0
    limit: int | None = None
    keep_data: bool = False
    progress: bool = True
    #: run the client on uvloop when it is installed
    uvloop: bool = True


def load_plan(workload: str, limit: int | None = None) -> tuple[Path, Plan]:
    """Resolve and read a workload (its first `limit` lines when given) into a plan."""
    path = resolve(workload)
    lines = read_workload(path)
    if limit is not None:
        lines = (line for i, line in enumerate(lines) if i < limit)
    return path, build_plan(lines)


def run_bench(options: BenchOptions, console: Console) -> dict[str, Any]:
    """Run the whole bench; returns the report."""
    path, plan = load_plan(options.workload, options.limit)
    users = len(plan.users)
    console.print(f"[bold]{escape(path.name)}[/]: {plan.total:,} commands, "
                  f"{users:,} user{'' if users == 1 else 's'}" + held_back_note(len(plan.deferred)))
    server: EmbeddedServer | None = None
    try:
        if options.embedded:
            server = EmbeddedServer(quote_latency=options.quote_latency, shards=options.shards,
                                    extra_args=options.up_args, keep=options.keep_data)
            console.print("starting daytrade up ...")
            server.start()
            host, port, token, root_pid = server.host, server.port, server.token, server.pid
            console.print(f"daytrade up on {host}:{port} (data in {server.data_dir})")
        else:
            host, port = options.host, options.port
            token = read_token(options.token_file) if options.token_file else None
            root_pid = procstats.listener_pid(port) if host in _LOOPBACK else None
        run = _Run(options, plan, console, host, port, token, root_pid, server)
        with _client_collector():
            result = _run_loop(run.main(), options.uvloop)
    finally:
        if server is not None:
            code = server.stop()
            if code not in (0, None):
                console.print(f"[yellow]daytrade up exited with {code}")
    result["workload"] = {"name": path.name, "path": str(path), "lines": plan.total,
                          "users": len(plan.users), "limit": options.limit}
    if options.calibrate:
        result["calibration"] = calibrate(plan, options, console, result["commands_per_s"])
    result["warnings"] = report.run_warnings(result)
    return result


def held_back_note(deferred: int) -> str:
    """What the plan holds back, for the first line of the run."""
    if not deferred:
        return ""
    lines = "line is" if deferred == 1 else "lines are"
    return (f"; its {deferred} DUMPLOG {lines} held back to run after every other command "
            f"has been answered (a DUMPLOG writes the whole log)")


def read_token(token_file: str) -> str:
    """The operator token in `token_file`; a BenchError saying which flag to use if unreadable."""
    try:
        token = Path(token_file).read_text().strip()
    except FileNotFoundError:
        raise BenchError(f"no operator token at {token_file}: pass --token-file DATA_DIR/"
                         f"operator.token of the running server (`daytrade up --data-dir "
                         f"DATA_DIR`), or use --embedded", status=2) from None
    except OSError as exc:
        raise BenchError(f"cannot read the operator token {token_file} "
                         f"({(exc.strerror or str(exc)).lower()}): pass --token-file with the "
                         f"running server's DATA_DIR/operator.token, or use --embedded",
                         status=2) from None
    if not token:
        raise BenchError(f"the operator token file {token_file} is empty: pass --token-file "
                         f"with the running server's DATA_DIR/operator.token", status=2)
    return token


async def connect_or_explain(host: str, port: int, count: int, token: str | None,
                             token_file: str | None, timeout: float) -> list[DaytradeClient]:
    """connect_all, with a BenchError that says what to do when there is no server there or it
    refuses the token."""
    where = f"{host}:{port}"
    try:
        return await connect_all(host, port, count, token, timeout=timeout)
    except ConnectionRefusedError:
        raise BenchError(f"no daytrade server at {where}; start one with `daytrade up` or use "
                         f"--embedded") from None
    except socket.gaierror as exc:
        raise BenchError(f"cannot find host {host!r} ({exc.strerror}); check --host") from None
    except TimeoutError:
        raise BenchError(f"no answer from {where} within {timeout:g} s; is a daytrade server "
                         f"listening there? (start one with `daytrade up` or use --embedded)"
                         ) from None
    except PermissionError as exc:
        raise BenchError(f"the server at {where} refused the operator token"
                         + (f" in {token_file}" if token_file else "")
                         + f" ({exc}); pass --token-file with the operator.token of that "
                           f"server's data dir, or use --embedded") from None
    except OSError as exc:
        # Several addresses tried (e.g. localhost: ::1 and 127.0.0.1), all refused.
        if exc.errno is None and "Connect call failed" in str(exc):
            raise BenchError(f"no daytrade server at {where}; start one with `daytrade up` or "
                             f"use --embedded") from None
        raise BenchError(f"cannot connect to {where}: {exc.strerror or exc}") from None


def _uvloop(wanted: bool) -> Any:
    if not wanted:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop


#: Allocations between the client's young-generation collections during a run (default 700).
CLIENT_GC_THRESHOLD = 50_000


@contextmanager
def _client_collector() -> Iterator[None]:
    """The plan and everything made before the run frozen out of collection, and young
    collections rarer: the collector took a fifth of the client's CPU on final_2019 (3.6 s),
    CPU the server under test shares."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(CLIENT_GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _run_loop(coro: Any, use_uvloop: bool = True) -> Any:
    """Run on uvloop when wanted and installed (a faster client), else on asyncio's own loop."""
    uvloop = _uvloop(use_uvloop)
    if uvloop is None:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def event_loop_name(use_uvloop: bool = True) -> str:
    return "asyncio" if _uvloop(use_uvloop) is None else "uvloop"


class _Run:
    """The steps of one run against one server."""

    def __init__(self, options: BenchOptions, plan: Plan, console: Console, host: str,
                 port: int, token: str | None, root_pid: int | None,
                 server: EmbeddedServer | None) -> None:
        self.options = options
        self.plan = plan
        self.console = console
        self.host = host
        self.port = port
        self.token = token
        self.server = server
        self.tree = procstats.ProcessTree(root_pid) if root_pid is not None else None
        # Txns for the bench's own requests (summaries, an added DUMPLOG): above the workload's.
        self._next_txn = max([max(u.txns) for u in plan.users if len(u)]
                             + [d.txn for d in plan.deferred] + [0]) + 1

    def txn(self) -> int:
        self._next_txn += 1
        return self._next_txn - 1

    async def main(self) -> dict[str, Any]:
        options, plan = self.options, self.plan
        settings = options.replay
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        clients = await connect_or_explain(self.host, self.port, settings.connections, self.token,
                                           options.token_file, settings.timeout)
        sampler = None
        try:
            stats_before = await self.stats(clients[0])
            self.name_shards(stats_before)
            procs_before = self.tree.poll(with_threads=True) if self.tree else {}
            machine_before, load_before = procstats.machine_cpu(), procstats.load_average()
            sampler = asyncio.get_running_loop().create_task(self.sample())
            recorder = Recorder(plan.kinds)
            replayer = Replayer(plan, clients, settings, recorder)
            with LiveProgress(self.console, plan.commands, enabled=options.progress) as live:
                live.follow(recorder)
                wall = await replayer.run()
                live.stop()
                procs_after = self.tree.poll(with_threads=True) if self.tree else {}
                machine_after, load_after = procstats.machine_cpu(), procstats.load_average()
                stats_after = await self.stats(clients[0])
                # (A shard still starting may have missed the first STATS's 2 s.)
                self.name_shards(stats_after)
                before_cash = await self.summaries(clients) if options.validate else None
                live.note("DUMPLOG ...")
                dumps_started = time.perf_counter()
                dumps = await self.dumplogs(clients[0])
                dumps_wall = time.perf_counter() - dumps_started
                live.note(f"DUMPLOG done in {dumps_wall:.1f} s")
            validation = None
            if options.validate:
                after_cash = await self.summaries(clients)
                validation = self.check(dumps, before_cash or {}, after_cash)
            procs_end = self.tree.poll(with_threads=True) if self.tree else {}
        finally:
            if sampler is not None:
                sampler.cancel()
            await close_all(clients)

        commands = recorder.done
        server = report.process_summary(procs_before, procs_after, procs_end,
                                        self.tree.peak_rss_kb if self.tree else 0, commands)
        result: dict[str, Any] = {
            "version": report.REPORT_VERSION,
            "started_at": started_at,
            "target": {"mode": "embedded" if self.server else "server", "host": self.host,
                       "port": self.port,
                       "quote_latency": options.quote_latency if self.server else None,
                       "shards": len(stats_after.get("shards", [])) if stats_after else None},
            "settings": {**asdict(settings), "event_loop": event_loop_name(options.uvloop)},
            "planned_commands": plan.commands,
            "commands": commands,
            "wall_s": round(wall, 3),
            "commands_per_s": round(commands / wall, 1) if wall > 0 else 0.0,
            "end_to_end": {
                "commands": commands + len(dumps),
                "wall_s": round(wall + dumps_wall, 3),
                "commands_per_s": round((commands + len(dumps)) / (wall + dumps_wall), 1)
                if wall + dumps_wall > 0 else 0.0},
            "latency": recorder.latency_summary(),
            "errors": recorder.error_summary(),
            "client": replayer.counters.as_dict(),
            "quotes": report.quote_summary(stats_before, stats_after),
            "shards": report.shard_summary(stats_before, stats_after),
            "server": server,
            "machine": report.machine_summary(
                machine_before, machine_after, wall, server["cpu_s"] if server else None,
                replayer.counters.cpu_s, os.cpu_count(), (load_before, load_after)),
            "dumplog": dumps,
            "dumplog_wall_s": round(dumps_wall, 3),
            "validation": validation,
            "calibration": None,
            "timeline": recorder.timeline(wall),
            "stats": {"before": stats_before, "after": stats_after},
        }
        return result

    # --- steps ----------------------------------------------------------------------------------

    async def stats(self, client: DaytradeClient) -> dict[str, Any] | None:
        """The server's STATS, or None when it will not give them (no operator token)."""
        if self.token is None:
            return None
        reply = await client.send("STATS", txn=self.txn())
        return reply.result if reply.ok else None

    def name_shards(self, stats: dict[str, Any] | None) -> None:
        if self.tree is None or not stats:
            return
        for shard in stats.get("shards", []):
            if isinstance(shard, dict) and "pid" in shard:
                self.tree.roles[shard["pid"]] = f"shard-{shard.get('shard', '?')}"

    async def sample(self) -> None:
        """Poll the server's processes for their summed RSS, rescanning the tree now and then."""
        count = 0
        while self.tree is not None:
            await asyncio.sleep(SAMPLE_S)
            count += 1
            if count % RESCAN_EVERY == 0:
                self.tree.rescan()
            self.tree.poll()

    async def summaries(self, clients: list[DaytradeClient]) -> dict[str, CashSummary | None]:
        """Every user's cash by DISPLAY_SUMMARY (None for a user the server does not know)."""
        users = [u.user for u in self.plan.users if u.user]
        futures = [clients[i % len(clients)].send(f"DISPLAY_SUMMARY,{user}", txn=self.txn())
                   for i, user in enumerate(users)]
        replies: list[Reply] = await asyncio.gather(*futures)
        cash: dict[str, CashSummary | None] = {}
        for user, reply in zip(users, replies):
            if reply.ok:
                cash[user] = cash_summary(reply.result)
            elif reply.code is ErrorCode.UNKNOWN_USER:
                cash[user] = None
            else:
                raise RuntimeError(f"DISPLAY_SUMMARY,{user} failed: {reply.code}: "
                                   f"{reply.message}")
        return cash

    async def dumplogs(self, client: DaytradeClient) -> list[dict[str, Any]]:
        """Run the held-back DUMPLOG lines in file order; save each file written."""
        lines = list(self.plan.deferred)
        if self.options.validate and not any(line.user is None for line in lines):
            lines.append(WorkloadLine(self.txn(), f"DUMPLOG,./{VALIDATE_DUMP_NAME}", None,
                                      "DUMPLOG"))
        out = []
        for line in lines:
            started = time.perf_counter()
            entry: dict[str, Any] = {"txn": line.txn, "line": line.text, "user": line.user}
            try:
                reply = await client.send(line.text, txn=line.txn,
                                          timeout=self.options.dumplog_timeout)
            except (TimeoutError, ConnectionError) as exc:
                entry.update(ok=False, error=f"{type(exc).__name__}: {exc}")
            else:
                entry["ok"] = reply.ok
                if reply.ok:
                    result = reply.result or {}
                    entry["events"] = result.get("events")
                    entry["server_path"] = result.get("path")
                    entry["saved_to"] = self.save(result.get("path"), entry)
                else:
                    entry["error"] = f"{reply.code}: {reply.message}"
            entry["seconds"] = round(time.perf_counter() - started, 3)
            out.append(entry)
        return out

    def save(self, server_path: str | None, entry: dict[str, Any] | None = None) -> str | None:
        """Move (embedded) or copy (a local server's) dump file into --dump-to; a file already
        there (an earlier run's, or another DUMPLOG's of the same name) is replaced, which
        `entry["replaced"]` says."""
        if not server_path or not os.path.exists(server_path):
            return None
        if self.options.dump_to is None:
            return None if self.server else server_path
        target_dir = Path(self.options.dump_to)
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / Path(server_path).name
        if entry is not None and target.exists() and not target.samefile(server_path):
            entry["replaced"] = True
        if self.server is not None:
            shutil.move(server_path, target)
        else:
            shutil.copy2(server_path, target)
        return str(target.resolve())

    def check(self, dumps: list[dict[str, Any]], before: dict[str, CashSummary | None],
              after: dict[str, CashSummary | None]) -> dict[str, Any]:
        """Validate the last all-users DUMPLOG file saved."""
        whole = [d for d in dumps if d.get("ok") and d.get("user") is None and d.get("saved_to")]
        if not whole:
            return {"ok": False, "schema_ok": False,
                    "schema_error": "no all-users DUMPLOG file to validate (pass --dump-to "
                                    "when the server is not embedded)",
                    "events": 0, "events_by_kind": {}, "bad_transactions": [], "cash": None}
        scan = scan_log(whole[-1]["saved_to"])
        users = [u.user for u in self.plan.users if u.user]
        result = validation_report(scan, check_cash(scan.cash, users, before, after))
        result["file"] = whole[-1]["saved_to"]
        return result


def calibrate(plan: Plan, options: BenchOptions, console: Console,
              daytrade_rate: float) -> dict[str, Any]:
    """Replay the plan against the bare line server with the same client settings."""
    settings = ReplaySettings(**{**asdict(options.replay), "rate": None})
    console.print("calibrating against a bare Twisted line server ...")
    with tempfile.TemporaryDirectory(prefix="daytrade-calibrate-") as tmp, \
            CalibrationServer(Path(tmp)) as server:
        tree = procstats.ProcessTree(server.pid)

        async def go() -> tuple[float, Recorder, float]:
            clients = await connect_all(server.host, server.port, settings.connections, "x",
                                        timeout=settings.timeout)
            try:
                before = tree.poll()
                recorder = Recorder(plan.kinds)
                with LiveProgress(console, plan.commands, enabled=options.progress,
                                  description="calibration") as live:
                    live.follow(recorder)
                    wall = await Replayer(plan, clients, settings, recorder).run()
                after = tree.poll()
                cpu = sum(procstats.cpu_between(before, after).values())
                return wall, recorder, cpu
            finally:
                await close_all(clients)

        wall, recorder, cpu = _run_loop(go(), options.uvloop)
    rate = recorder.done / wall if wall > 0 else 0.0
    return {
        "commands": recorder.done,
        "wall_s": round(wall, 3),
        "commands_per_s": round(rate, 1),
        "server_cpu_us_per_command": round(cpu / recorder.done * 1e6, 2) if recorder.done else None,
        "latency": recorder.latency_summary()["all"],
        "ratio": round(daytrade_rate / rate, 4) if rate > 0 else None,
        "note": "in-flight and connections as the run; open-loop rate not applied"
        if options.replay.rate else "same connections and in-flight as the run",
    }
