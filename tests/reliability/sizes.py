"""The two sizes of the reliability battery: a small one for every CI run, a large one on demand."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    """How much each battery item does at one size."""

    name: str
    workload: str  # replayed by the crash battery
    shard_kills: int  # SIGKILLs of a shard worker at random moments
    named_crashes: int  # shard crashes at the named points (after_apply / after_commit)
    up_kills: int  # SIGKILLs of `daytrade up` itself, restarted on the same data directory
    dependency_users: int  # closed-loop users running while a dependency fails
    phase_s: float  # seconds each dependency fault lasts
    disconnects: int  # clients that vanish in the middle of a command
    idle_connections: int
    flood_s: float  # seconds the flood client floods
    fuzz_lines: int  # fuzzed request lines over the real socket
    fuzz_workers: int  # connections fuzzing at once (each for its own user)
    brute_force_attempts: int  # wrong passwords tried against one user id


CI = Size(name="ci", workload="10user.txt", shard_kills=3, named_crashes=2, up_kills=1,
          dependency_users=4, phase_s=1.5, disconnects=40, idle_connections=200, flood_s=3.0,
          fuzz_lines=2_000, fuzz_workers=1, brute_force_attempts=30)

SOAK = Size(name="soak", workload="45user.txt", shard_kills=20, named_crashes=20, up_kills=20,
            dependency_users=12, phase_s=6.0, disconnects=1_000, idle_connections=10_000,
            flood_s=10.0, fuzz_lines=100_000, fuzz_workers=4, brute_force_attempts=300)
