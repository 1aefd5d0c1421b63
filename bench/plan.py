"""Turn a workload into a replay plan: each user's commands in file order, DUMPLOGs held back.

The plan keeps one compact script per user (texts, txns, command kinds and global positions in
parallel arrays), so that the 1.2M-line final workload fits in ~100 bytes a command.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

from bench.workload import WorkloadLine

#: Commands held back until every other command has been answered.
DEFERRED = frozenset({"DUMPLOG"})


@dataclass
class UserScript:
    """One user's commands in the order the workload gives them."""

    user: str
    texts: list[str] = field(default_factory=list)
    txns: array = field(default_factory=lambda: array("q"))
    #: index into `Plan.kinds` of each command's name
    kinds: array = field(default_factory=lambda: array("I"))
    #: each command's position among all non-deferred commands of the workload (for --rate)
    positions: array = field(default_factory=lambda: array("q"))

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class Plan:
    """A workload grouped by user (users in order of first appearance) plus its deferred lines."""

    users: list[UserScript]
    kinds: list[str]
    deferred: list[WorkloadLine]
    #: user index of each non-deferred command in the order --rate releases them: file order,
    #: or the users' commands in turn when the file lists one user's commands after another's
    #: (released in file order, such a workload would offer one user at a time, whose commands
    #: per-user order serialises: a queue, not a load)
    order: array

    @property
    def commands(self) -> int:
        """Commands replayed in the main phase (deferred lines excluded)."""
        return len(self.order)

    @property
    def total(self) -> int:
        """Every line of the workload."""
        return len(self.order) + len(self.deferred)


def build_plan(lines: Iterable[WorkloadLine]) -> Plan:
    """Group workload lines by user keeping their order; hold back DUMPLOG lines."""
    by_user: dict[str, int] = {}
    users: list[UserScript] = []
    kind_index: dict[str, int] = {}
    kinds: list[str] = []
    deferred: list[WorkloadLine] = []
    order = array("q")
    for line in lines:
        if line.command in DEFERRED:
            deferred.append(line)
            continue
        # Lines without a user (malformed ones) still go out, on a user slot of their own.
        user = line.user or ""
        index = by_user.get(user)
        if index is None:
            index = by_user[user] = len(users)
            users.append(UserScript(user))
        kind = kind_index.get(line.command)
        if kind is None:
            kind = kind_index[line.command] = len(kinds)
            kinds.append(line.command)
        script = users[index]
        script.positions.append(len(order))
        script.texts.append(line.text)
        script.txns.append(line.txn)
        script.kinds.append(kind)
        order.append(index)
    if len(users) > 1 and _grouped_by_user(order, len(users)):
        order = _in_turn(users)
    return Plan(users, kinds, deferred, order)


def _grouped_by_user(order: array, user_count: int) -> bool:
    """True when each user's commands come in one run (one user after another)."""
    runs = 1 + sum(1 for previous, current in zip(order, order[1:]) if previous != current)
    return runs == user_count


def _in_turn(users: list[UserScript]) -> array:
    """The release order that takes each user's next command in turn (and sets positions)."""
    order = array("q")
    for round_ in range(max(len(u) for u in users)):
        for index, script in enumerate(users):
            if round_ < len(script):
                script.positions[round_] = len(order)
                order.append(index)
    return order


def spread(user_count: int, connections: int) -> list[list[int]]:
    """User indices per connection, dealt round-robin (at most `user_count` connections)."""
    n = max(1, min(connections, user_count))
    return [list(range(i, user_count, n)) for i in range(n)]
