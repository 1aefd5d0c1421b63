"""Where a gateway's remote shards are: `--shard K=HOST:PORT` flags or a `--cluster` file.

A cluster file is JSON: {"shards": N, "addresses": ["host:port", ...]}, shard K at position K.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from server.cli_args import host_port


class ClusterError(ValueError):
    """Shard addresses that do not name each shard 0 .. N-1 exactly once."""


def parse_shard_flag(text: str) -> tuple[int, tuple[str, int]]:
    """`K=HOST:PORT` -> (K, (host, port)) (an argparse type)."""
    index_text, sep, address = text.partition("=")
    if not sep or not index_text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"must be K=HOST:PORT (K the shard index), not {text!r}")
    return int(index_text), host_port(address)


def from_flags(flags: list[tuple[int, tuple[str, int]]]) -> list[tuple[str, int]]:
    """The addresses of shards 0 .. N-1 from repeated --shard flags."""
    by_index: dict[int, tuple[str, int]] = {}
    for index, address in flags:
        if index in by_index:
            raise ClusterError(f"shard {index} is given twice")
        by_index[index] = address
    missing = sorted(set(range(len(by_index))) - set(by_index))
    if missing:
        raise ClusterError(f"{len(by_index)} --shard flags must name shards 0 .. "
                           f"{len(by_index) - 1}; missing: {', '.join(map(str, missing))}")
    return [by_index[i] for i in range(len(by_index))]


def from_file(path: str | Path) -> list[tuple[str, int]]:
    """The addresses of shards 0 .. N-1 from a cluster file."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ClusterError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ClusterError(f"{path} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("shards"), int) or not isinstance(
            doc.get("addresses"), list):
        raise ClusterError(f'{path} must be {{"shards": N, "addresses": ["host:port", ...]}}')
    count, addresses = doc["shards"], doc["addresses"]
    if count < 1 or len(addresses) != count:
        raise ClusterError(f"{path} says {count} shards but lists {len(addresses)} addresses")
    try:
        return [host_port(str(a)) for a in addresses]
    except argparse.ArgumentTypeError as exc:
        raise ClusterError(f"{path}: an address {exc}") from None
