"""`daytrade bench WORKLOAD ...`: replay a workload against daytrade and report the figures.

Exit status: 0 when every command was answered (and --validate passed), 1 otherwise (no server
there, a failed run), 2 for bad usage (an unknown workload, a missing token file, --plot without
matplotlib, an output file in a directory that does not exist).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from bench import compare, report
from bench.embedded import ServerStartError
from bench.plot import PlotUnavailable, check_plot_available
from bench.runner import ReplaySettings
from bench.session import BenchError, BenchOptions, run_bench


def _quote_latency(text: str) -> str:
    if text == "legacy":
        return text
    kind, _, ms = text.partition(":")
    if kind != "fixed" or not ms.replace(".", "", 1).isdigit():
        raise argparse.ArgumentTypeError("expected legacy or fixed:<ms>")
    return text


def _positive(kind: type) -> object:
    def parse(text: str) -> object:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError("must be positive")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="daytrade bench",
        description="Replay a workload file against daytrade: per-user order, users spread "
                    "over connections, DUMPLOG last; report throughput, latency, errors, quote "
                    "cache, server CPU and memory.")
    ap.add_argument("workload", help="a workload file ([N] or $ lines, .gz ok) or the name of "
                                     "a shipped one (1user.txt, 10user.txt, 100user.txt, ...)")
    target = ap.add_argument_group("target")
    target.add_argument("--embedded", action="store_true",
                        help="start the whole system (daytrade up) on a fresh data dir and "
                             "tear it down after")
    target.add_argument("--host", default="127.0.0.1",
                        help="a running server (default %(default)s)")
    target.add_argument("--port", type=int, default=4000, help="its port (default %(default)s)")
    target.add_argument("--token-file", default="daytrade-data/operator.token",
                        help="its operator token (default %(default)s)")
    target.add_argument("--quote-latency", type=_quote_latency, default="legacy",
                        metavar="legacy|fixed:<ms>",
                        help="embedded: the quote simulator's latency (default legacy)")
    target.add_argument("--shards", type=_positive(int),
                        help="embedded: shard processes (default: daytrade up's)")
    target.add_argument("--up-arg", action="append", default=[], metavar="ARG",
                        help="embedded: one more argument for daytrade up (repeatable), "
                             "e.g. --up-arg=--sweep-interval=0.5")
    target.add_argument("--keep-data", action="store_true",
                        help="embedded: keep the temporary data directory")
    load = ap.add_argument_group("load")
    load.add_argument("--connections", type=_positive(int), default=4,
                      help="connections; users are dealt over them (default %(default)s)")
    load.add_argument("--in-flight", type=int, default=0, metavar="K",
                      help="users in flight per connection, closed loop (0: all; default 0)")
    load.add_argument("--rate", type=_positive(float), metavar="R",
                      help="offer R commands/s (open loop, per-user order kept; latency from "
                           "each command's scheduled time); --in-flight is then ignored")
    load.add_argument("--timeout", type=_positive(float), default=60.0,
                      help="seconds a command may wait for its reply (default %(default)s)")
    load.add_argument("--dumplog-timeout", type=_positive(float), default=3600.0,
                      help="seconds a DUMPLOG may take (default %(default)s)")
    load.add_argument("--limit", type=_positive(int), metavar="N",
                      help="replay only the workload's first N lines")
    out = ap.add_argument_group("output")
    out.add_argument("--validate", action="store_true",
                     help="check the DUMPLOG file against logfile.xsd and each user's cash "
                          "against DISPLAY_SUMMARY")
    out.add_argument("--dump-to", default=".", metavar="DIR",
                     help="where DUMPLOG files are saved (default: the current directory)")
    out.add_argument("--json", metavar="FILE", help="write the report as JSON")
    out.add_argument("--plot", metavar="FILE", help="write a PNG of throughput and p99 latency")
    out.add_argument("--calibrate", action="store_true",
                     help="also replay against a bare Twisted line server: the ceiling")
    out.add_argument("--compare", metavar="OLD.json", help="print the change against a report")
    out.add_argument("--no-progress", action="store_true", help="no live progress bar")
    out.add_argument("--no-uvloop", action="store_true",
                     help="run the client on asyncio's own loop even if uvloop is installed")
    return ap


def options_from(args: argparse.Namespace) -> BenchOptions:
    return BenchOptions(
        workload=args.workload, embedded=args.embedded, host=args.host, port=args.port,
        token_file=None if args.embedded else args.token_file,
        replay=ReplaySettings(connections=args.connections, in_flight=max(0, args.in_flight),
                              rate=args.rate, timeout=args.timeout),
        quote_latency=args.quote_latency, shards=args.shards, up_args=args.up_arg,
        validate=args.validate, calibrate=args.calibrate, dump_to=args.dump_to,
        dumplog_timeout=args.dumplog_timeout, limit=args.limit, keep_data=args.keep_data,
        progress=not args.no_progress, uvloop=not args.no_uvloop)


def _error(console: Console, text: str) -> None:
    """Print an error in red, as is: no rich markup in it (`daytrade[plot]` stays whole)."""
    console.print(text, style="red", markup=False, highlight=False)


def _os_error(exc: OSError) -> str:
    """An OSError in words: "permission denied: /x" rather than its repr."""
    what = exc.strerror.lower() if exc.strerror else str(exc)
    return f"{what}: {exc.filename}" if exc.filename else what


def check_outputs(args: argparse.Namespace) -> str | None:
    """What is wrong with the output flags, found before the replay (None: nothing)."""
    if args.plot:
        try:
            check_plot_available()
        except PlotUnavailable as exc:
            return str(exc)
    for flag, value in (("--json", args.json), ("--plot", args.plot)):
        if value and not Path(value).resolve().parent.is_dir():
            return f"{flag} {value}: no directory {Path(value).resolve().parent}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of `daytrade bench`."""
    args = parser().parse_args(argv)
    console = report.make_console()
    old = None
    if args.compare:
        try:
            old = report.load_json(args.compare)
        except OSError as exc:
            _error(console, f"cannot read --compare {args.compare}: {_os_error(exc)}")
            return 2
        except ValueError as exc:
            _error(console, f"--compare {args.compare} is not a bench report (JSON): {exc}")
            return 2
    problem = check_outputs(args)
    if problem is not None:
        _error(console, f"{problem}")
        return 2
    try:
        result = run_bench(options_from(args), console)
    except BenchError as exc:
        _error(console, f"{exc}")
        return exc.status
    except FileNotFoundError as exc:
        _error(console, f"{exc}")
        return 2
    except ServerStartError as exc:
        _error(console, f"bench failed: {exc}")
        return 1
    except OSError as exc:
        _error(console, f"bench failed: {_os_error(exc)}")
        return 1
    report.render(result, console)
    if old is not None:
        compare.render(compare.compare(old, result), console, Path(args.compare).name)
    failed = False
    if args.json:
        try:
            report.write_json(result, args.json)
            console.print(f"report written to {args.json}")
        except OSError as exc:
            _error(console, f"cannot write --json {args.json}: {_os_error(exc)}")
            failed = True
    if args.plot:
        from bench.plot import write_plot

        try:
            write_plot(result, args.plot)
            console.print(f"plot written to {args.plot}")
        except (PlotUnavailable, OSError) as exc:
            _error(console, f"cannot write --plot {args.plot}: {exc}")
            failed = True
    report.render_summary(result, console)
    failed = failed or bool(report.client_problems(result))
    if result.get("validation") is not None and not result["validation"].get("ok"):
        failed = True
    if any(not d.get("ok") and d.get("user") is None for d in result.get("dumplog") or []):
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
