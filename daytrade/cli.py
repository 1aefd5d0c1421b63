"""`daytrade <subcommand>`: the one module that imports every part, and only when asked.

Each subcommand's module is imported on use, so `daytrade replay` never loads Twisted and
`daytrade up` never loads Textual.
"""

from __future__ import annotations

import importlib
import sys

#: subcommand -> (module, function taking argv and returning an exit code, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "replay": ("bench.offline", "main",
               "replay a workload through parser + engine in one process (no server)"),
    "up": ("server.up", "main", "run the whole system (gateway, shards, quotes, Redis, store)"),
    "shard": ("server.shard_command", "main",
              "serve one shard over TCP for a gateway on another host (daytrade up --shard)"),
    "shard-probe": ("server.shard_probe", "main",
                    "exit 0 when a remote shard completes the handshake and answers a ping"),
    "quotes": ("server.quotes.simulator", "main", "run the legacy quote-server simulator"),
    "tui": ("client_tui.app", "main", "the terminal dashboard (--demo: with an embedded server)"),
    "bench": ("bench.cli", "main", "replay a workload against the server and report commands/s"),
}


DESCRIPTION = ("daytrade: a day-trading system. Start the server with `daytrade up`, then talk "
               "to it\nwith `nc 127.0.0.1 4000` (send HELP) or `daytrade tui`.")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("daytrade")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    rows = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, _, help_) in SUBCOMMANDS.items())
    return (f"usage: daytrade <command> [options]\n\n{DESCRIPTION}\n\ncommands:\n{rows}\n\n"
            "options:\n  -h, --help  this help; `daytrade <command> --help` for a command's\n"
            "  --version   the installed version\n")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(usage())
        return 0
    if args[0] in ("-V", "--version"):
        sys.stdout.write(f"daytrade {version()}\n")
        return 0
    entry = SUBCOMMANDS.get(args[0])
    if entry is None:
        sys.stderr.write(f"daytrade: unknown command {args[0]!r}\n\n{usage()}")
        return 2
    module, func, _ = entry
    return int(getattr(importlib.import_module(module), func)(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
