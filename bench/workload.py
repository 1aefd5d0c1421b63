"""Read the standard workload files: `[N] ` lines keep their txn, `$ ` lines are numbered by line.

Files may be gzip-compressed (`.gz`); the files shipped with daytrade live in `bench/workloads/`.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from protocol import parser


class WorkloadLine(NamedTuple):
    """One request of a workload: its txn, the request text without prefix, and its user."""

    txn: int
    text: str
    user: str | None  # None for the all-users DUMPLOG
    command: str


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a workload file for reading, transparently gunzipping `.gz` files."""
    path = Path(path)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def shipped(name: str) -> Path:
    """Path of a workload shipped with daytrade (`10user.txt`, `final_2019_by_user.txt`, ...)."""
    folder = resources.files("bench") / "workloads"
    for candidate in (name, name + ".gz"):
        p = folder / candidate
        if p.is_file():
            return Path(str(p))
    names = sorted(p.name.removesuffix(".gz") for p in folder.iterdir() if p.is_file())
    raise FileNotFoundError(f"no workload file {name!r} here, and no shipped workload of that "
                            f"name (shipped: {', '.join(names)})")


def resolve(name_or_path: str | Path) -> Path:
    """A path as given if it exists, else the shipped workload of that name."""
    p = Path(name_or_path)
    if p.exists():
        return p
    return shipped(p.name)


def read_workload(path: str | Path) -> Iterator[WorkloadLine]:
    """Yield each request of a workload file in file order (blank lines skipped)."""
    with open_text(path) as f:
        for number, raw in enumerate(f, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            txn: int | None
            if line.startswith("$ "):
                txn, body = number, line[2:]
            elif line.startswith("["):
                end = line.find("]")
                txn, body = int(line[1:end]), line[end + 1 :].lstrip(" ")
            else:
                txn, body = number, line
            body = body.rstrip(" ")
            name, _, rest = body.partition(",")
            name = name.strip().upper()
            user: str | None
            if name == "DUMPLOG" and rest.count(",") == 0:
                user = None
            else:
                user = rest.split(",", 1)[0].strip() or None
            yield WorkloadLine(txn, body, user, name)


def parse_line(item: WorkloadLine) -> parser.c.Command:
    """The command of a workload line, with its txn."""
    return parser.parse_request(f"[{item.txn}] {item.text}")
