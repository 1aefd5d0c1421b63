"""The bench report: its figures from STATS and /proc samples, the rich tables, the JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.procstats import ProcSample, cpu_between, writes_between

REPORT_VERSION = 1
_MB = 1024.0  # kB per MB


# --- figures ------------------------------------------------------------------------------------


def _numeric_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int | float]:
    out: dict[str, int | float] = {}
    for key, value in after.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        prior = before.get(key, 0)
        out[key] = value - (prior if isinstance(prior, (int, float)) else 0)
    return out


def _shards(stats: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [s for s in (stats or {}).get("shards", []) if isinstance(s, dict)]


def quote_summary(before: dict[str, Any] | None, after: dict[str, Any] | None
                  ) -> dict[str, Any] | None:
    """Quote counters summed over the shards, as the change during the run."""
    if after is None:
        return None
    prior = {s.get("shard"): s.get("quotes") or {} for s in _shards(before)}
    totals: dict[str, int | float] = {}
    for shard in _shards(after):
        delta = _numeric_delta(prior.get(shard.get("shard"), {}), shard.get("quotes") or {})
        for key, value in delta.items():
            totals[key] = totals.get(key, 0) + value
    hits = totals.get("hits_local", 0) + totals.get("hits_redis", 0)
    lookups = hits + totals.get("fetches", 0)
    return {**totals, "cache_hit_rate": round(hits / lookups, 4) if lookups else None}


def shard_summary(before: dict[str, Any] | None, after: dict[str, Any] | None
                  ) -> dict[str, Any] | None:
    """Per shard: commands and batches during the run, and commands per batch."""
    if after is None:
        return None
    prior = {s.get("shard"): s for s in _shards(before)}
    rows = []
    for shard in _shards(after):
        start = prior.get(shard.get("shard"), {})
        commands = shard.get("commands", 0) - start.get("commands", 0)
        batches = shard.get("batches", 0) - start.get("batches", 0)
        rows.append({"shard": shard.get("shard"), "pid": shard.get("pid"),
                     "commands": commands, "batches": batches,
                     "commands_per_batch": round(commands / batches, 2) if batches else None,
                     "restarts": shard.get("restarts", 0), "down": bool(shard.get("down"))})
    gateway = _numeric_delta((before or {}).get("gateway", {}), after.get("gateway", {}))
    return {"per_shard": rows, "gateway": gateway}


def _known_sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _per_command(value: int | float | None, commands: int) -> float | None:
    return round(value / commands, 1) if value is not None and commands else None


def process_summary(before: dict[int, ProcSample], after: dict[int, ProcSample],
                    end: dict[int, ProcSample], peak_rss_kb: int, commands: int
                    ) -> dict[str, Any] | None:
    """CPU and disk writes per command during the replay, DUMPLOG's CPU and disk writes apart,
    and memory of every server process.

    Disk writes are /proc/<pid>/io `write_bytes` (None where unreadable: totals sum the readable
    processes and `write_bytes_unreadable` counts the others).
    """
    if not after:
        return None
    used = cpu_between(before, after)
    used_dump = cpu_between(after, end) if end else {}
    written = writes_between(before, after)
    written_dump = writes_between(after, end) if end else {}
    rows = []
    for pid in sorted(set(after) | set(end)):
        last = end.get(pid) or after[pid]
        cpu = used.get(pid, 0.0)
        wrote = written.get(pid, 0)  # a process born during DUMPLOG wrote nothing before
        rows.append({"pid": pid, "role": last.name, "cpu_s": round(cpu, 2),
                     "cpu_us_per_command": round(cpu / commands * 1e6, 2) if commands else None,
                     "dumplog_cpu_s": round(used_dump.get(pid, 0.0), 2),
                     "write_bytes": wrote,
                     "write_bytes_per_command": _per_command(wrote, commands),
                     "dumplog_write_bytes": written_dump.get(pid) if end else None,
                     "peak_rss_mb": round(last.hwm_kb / _MB, 1),
                     "rss_mb": round(last.rss_kb / _MB, 1)})
    total = sum(used.values())
    total_written = _known_sum([r["write_bytes"] for r in rows])
    return {
        "cpu_s": round(total, 2),
        "cpu_us_per_command": round(total / commands * 1e6, 2) if commands else None,
        "dumplog_cpu_s": round(sum(used_dump.values()), 2),
        "write_bytes": total_written,
        "write_bytes_per_command": _per_command(total_written, commands),
        "dumplog_write_bytes": _known_sum([r["dumplog_write_bytes"] for r in rows]),
        "write_bytes_unreadable": sum(1 for r in rows if r["write_bytes"] is None),
        "peak_rss_mb": round(peak_rss_kb / _MB, 1),
        "peak_rss_sum_of_process_peaks_mb": round(sum(r["peak_rss_mb"] for r in rows), 1),
        "processes": rows,
    }


def disk_writes_line(server: dict[str, Any] | None) -> str:
    """The report's line for bytes written to disk per command (n/a when unreadable)."""
    server = server or {}
    per_command = server.get("write_bytes_per_command")
    text = ("disk writes per command: "
            + (f"{per_command:,.0f} bytes" if per_command is not None else "n/a")
            + " (DUMPLOG apart")
    dump = server.get("dumplog_write_bytes")
    if dump is not None:
        text += f": {dump / 1e6:,.1f} MB"
    text += ")"
    unreadable = server.get("write_bytes_unreadable")
    if unreadable and per_command is not None:
        text += f", {unreadable} process{'es' if unreadable > 1 else ''} unreadable"
    return text


def machine_summary(busy_before: tuple[float, float], busy_after: tuple[float, float],
                    wall_s: float, server_cpu_s: float | None, client_cpu_s: float,
                    cpus: int | None, load: tuple[float | None, float | None]
                    ) -> dict[str, Any]:
    """How busy the machine was during the replay, and with what (cores in use, on average).

    `other_cores` is the CPU used by neither the server nor the bench: on a shared machine it
    says how far the figures can be trusted.
    """
    busy = busy_after[0] - busy_before[0]
    out: dict[str, Any] = {"cpus": cpus, "load_average_start": load[0],
                           "load_average_end": load[1]}
    if wall_s <= 0:
        return out
    out["busy_cores"] = round(busy / wall_s, 2)
    out["client_cores"] = round(client_cpu_s / wall_s, 2)
    if server_cpu_s is not None:
        out["server_cores"] = round(server_cpu_s / wall_s, 2)
        out["other_cores"] = round(max(0.0, busy - server_cpu_s - client_cpu_s) / wall_s, 2)
    return out


def write_json(result: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")


def load_json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


# --- tables -------------------------------------------------------------------------------------


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _na(value: Any, digits: int = 0) -> str:
    """A figure that may be unreadable: "n/a" rather than "-"."""
    return "n/a" if value is None else _n(value, digits)


def render(result: dict[str, Any], console: Console) -> None:
    """Print the report as rich tables."""
    target = result.get("target", {})
    workload = result.get("workload", {})
    where = (f"embedded, {target.get('shards')} shards, quotes {target.get('quote_latency')}"
             if target.get("mode") == "embedded" else f"{target.get('host')}:{target.get('port')}")
    settings = result.get("settings", {})
    console.print()
    console.rule(f"[bold]daytrade bench: {workload.get('name')} ({where})")
    mode = (f"open loop at {settings['rate']:,.0f} commands/s" if settings.get("rate")
            else f"closed loop, {settings.get('in_flight') or 'all'} users in flight per "
                 f"connection")
    console.print(f"{settings.get('connections')} connections, {mode}, "
                  f"client on {settings.get('event_loop')}")

    t = Table(title="Throughput", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("commands (DUMPLOG aside)", _n(result.get("commands")))
    t.add_row("wall time", f"{result.get('wall_s', 0):.2f} s")
    t.add_row("[bold]commands/s", f"[bold]{_n(result.get('commands_per_s'))}")
    e2e = result.get("end_to_end") or {}
    t.add_row("with DUMPLOG: commands / wall / per s",
              f"{_n(e2e.get('commands'))} / {e2e.get('wall_s', 0):.2f} s / "
              f"{_n(e2e.get('commands_per_s'))}")
    calibration = result.get("calibration")
    if calibration:
        t.add_row("calibration ceiling (bare line server)",
                  f"{_n(calibration.get('commands_per_s'))} /s")
        ratio = calibration.get("ratio")
        t.add_row("[bold]daytrade / ceiling", f"[bold]{ratio:.1%}" if ratio is not None else "-")
    console.print(t)

    latency = result.get("latency") or {}
    t = Table(title="Latency (ms)")
    for name in ("command", "count", "p50", "p95", "p99", "max"):
        t.add_column(name, justify="left" if name == "command" else "right")
    rows = [("[bold]all", latency.get("all") or {})]
    rows += sorted((latency.get("by_command") or {}).items())
    for name, s in rows:
        t.add_row(name, _n(s.get("count")), _n(s.get("p50_ms"), 2), _n(s.get("p95_ms"), 2),
                  _n(s.get("p99_ms"), 2), _n(s.get("max_ms"), 2))
    console.print(t)

    errors = result.get("errors") or {}
    if errors.get("by_code"):
        t = Table(title=f"Error replies ({_n(errors.get('total'))})")
        t.add_column("code")
        t.add_column("count", justify="right")
        for code, count in errors["by_code"].items():
            t.add_row(code, _n(count))
        console.print(t)

    t = Table(title="Server", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    quotes = result.get("quotes")
    if quotes:
        t.add_row("quote-server fetches", _n(quotes.get("fetches")))
        t.add_row("quote-server requests sent", _n(quotes.get("requests_sent")))
        rate = quotes.get("cache_hit_rate")
        t.add_row("quote cache hit rate", f"{rate:.2%}" if rate is not None else "-")
    shards = result.get("shards")
    if shards:
        for row in shards.get("per_shard", []):
            t.add_row(f"shard {row['shard']}: commands / per batch",
                      f"{_n(row['commands'])} / {_n(row['commands_per_batch'], 1)}")
    server = result.get("server")
    if server:
        t.add_row("server CPU", f"{server['cpu_s']:.2f} s")
        t.add_row("[bold]server CPU per command",
                  f"[bold]{_n(server.get('cpu_us_per_command'), 1)} µs")
        t.add_row("[bold]peak RSS, all server processes", f"[bold]{server['peak_rss_mb']:.0f} MB")
        t.add_row("sum of each process's peak RSS",
                  f"{server['peak_rss_sum_of_process_peaks_mb']:.0f} MB")
        if server.get("dumplog_cpu_s"):
            t.add_row("server CPU during DUMPLOG", f"{server['dumplog_cpu_s']:.2f} s")
        written = server.get("write_bytes")
        t.add_row("disk writes, all server processes",
                  f"{written / 1e6:,.1f} MB" if written is not None else "n/a")
    client = result.get("client") or {}
    commands = result.get("commands") or 0
    machine = result.get("machine") or {}
    if "busy_cores" in machine:
        t.add_row("cores busy: server / bench client / others",
                  f"{_n(machine.get('server_cores'), 2)} / {_n(machine.get('client_cores'), 2)}"
                  f" / {_n(machine.get('other_cores'), 2)} of {machine.get('cpus')}")
    if commands:
        t.add_row("client CPU per command",
                  f"{client.get('cpu_s', 0) / commands * 1e6:,.1f} µs")
    if client.get("busy_retries"):
        t.add_row("busy replies retried", _n(client["busy_retries"]))
    console.print(t)
    if server:
        console.print(disk_writes_line(server))

    if server:
        t = Table(title="Server processes")
        for name in ("role", "pid", "CPU s", "µs/command", "DUMPLOG CPU s", "write B/command",
                     "DUMPLOG write MB", "peak RSS MB"):
            t.add_column(name, justify="left" if name == "role" else "right")
        for row in server["processes"]:
            dump_written = row.get("dumplog_write_bytes")
            t.add_row(row["role"], str(row["pid"]), _n(row["cpu_s"], 2),
                      _n(row["cpu_us_per_command"], 1), _n(row["dumplog_cpu_s"], 2),
                      _na(row.get("write_bytes_per_command"), 1),
                      _na(dump_written / 1e6 if dump_written is not None else None, 1),
                      _n(row["peak_rss_mb"], 1))
        console.print(t)

    for dump in result.get("dumplog") or []:
        if dump.get("ok"):
            where = dump.get("saved_to") or dump.get("server_path")
            console.print(f"DUMPLOG [{dump['txn']}]: {_n(dump.get('events'))} events in "
                          f"{dump['seconds']:.2f} s -> {where}")
        else:
            console.print(f"[red]DUMPLOG [{dump['txn']}] failed: {dump.get('error')}")

    problems = client_problems(result)
    if problems:
        console.print("[red]client-side problems: " + ", ".join(problems))
    validation = result.get("validation")
    if validation is not None:
        render_validation(validation, console)


def render_validation(validation: dict[str, Any], console: Console) -> None:
    if validation.get("schema_ok"):
        console.print(f"[green]schema: valid[/] ({_n(validation.get('events'))} events)")
    else:
        console.print(f"[red]schema: INVALID: {validation.get('schema_error')}")
    for bad in validation.get("bad_transactions") or []:
        console.print(f"[red]unreadable accountTransaction: {bad}")
    cash = validation.get("cash")
    if cash is not None:
        if cash["ok"]:
            console.print(f"[green]cash: the log's account transactions give every user's "
                          f"DISPLAY_SUMMARY cash[/] ({_n(cash['users'])} users"
                          + (f", {cash['moved']} moved during the check" if cash["moved"] else "")
                          + ")")
            if cash.get("unverified"):
                console.print(f"[yellow]cash: {cash['unverified']} users changed too much "
                              f"around the DUMPLOG to be checked")
        else:
            console.print(f"[red]cash: {cash['mismatches']} of {cash['users']} users differ "
                          f"from DISPLAY_SUMMARY")
            for example in cash["examples"]:
                console.print(f"  {example}")
    console.print("[bold green]validation passed" if validation.get("ok")
                  else "[bold red]validation FAILED")


def client_problems(result: dict[str, Any]) -> list[str]:
    """What went wrong on the wire (not the workload's own error replies)."""
    client = result.get("client") or {}
    problems = [f"{client[k]} {k.replace('_', ' ')}" for k in
                ("mismatched", "late_replies", "unmatched_replies", "decode_errors")
                if client.get(k)]
    by_code = (result.get("errors") or {}).get("by_code", {})
    problems += [f"{by_code[k]} {k.replace('_', ' ')}" for k in
                 ("client_timeout", "connection_lost", "client_error", "internal")
                 if by_code.get(k)]
    failures = sum(by_code.get(k, 0) for k in ("client_timeout", "connection_lost",
                                                "client_error"))
    # Every send gets one reply: `busy` ones are sent again, so they add a reply each.
    answered = (client.get("replies") or 0) - (client.get("busy_retries") or 0)
    planned = result.get("planned_commands", result.get("commands"))
    if answered + failures != planned or result.get("commands") != planned:
        problems.append(f"{answered:,} replies + {failures:,} failures for "
                        f"{planned:,} commands")
    return problems
