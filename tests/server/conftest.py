"""Fixtures that start the real system on 127.0.0.1 with free ports."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from bench.workload import read_workload, shipped
from tests.support.system import RunningSystem


def fixed_price(symbol: str) -> int:
    """The price (cents) end-to-end tests give each symbol: fixed, different per symbol."""
    return 100 + zlib.crc32(symbol.encode()) % 49_901


def workload_prices(name: str) -> dict[str, int]:
    symbols = set()
    for item in read_workload(shipped(name)):
        parts = item.text.split(",")
        if item.command in {"QUOTE", "BUY", "SELL"} and len(parts) > 2:
            symbols.add(parts[2].strip())
    return {s: fixed_price(s) for s in symbols if s.isalpha() and s.isupper() and len(s) <= 3}


@pytest.fixture
def system_factory(tmp_path: Path):
    started: list[RunningSystem] = []

    def start(name: str = "data", **kwargs) -> RunningSystem:
        system = RunningSystem(tmp_path / name, **kwargs).start()
        started.append(system)
        return system

    yield start
    for system in started:
        system.stop()
