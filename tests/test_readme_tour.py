"""README's short tour, executed line by line against a fresh server: each reply's `cmd`, `ok`,
error code and every literal field README shows must be what the server answers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.lines import LineClient
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
TOKEN = "<the token in daytrade-data/operator.token>"
TXN_OF = re.compile(r"<the txn of the (\w+) reply>")
#: `"key":value` pairs README shows literally (a `...` value is left out, so it is not checked)
LITERAL = re.compile(r'"(\w+)":("(?:[^"\\]|\\.)*"|-?\d+|true|false|null)')


def tour() -> list[tuple[str, str]]:
    """(request, reply as README shows it) for each step of the tour's console block."""
    section = README.split("## A short tour", 1)[1]
    block = re.search(r"```console\n(.*?)```", section, re.S).group(1)
    lines = [line for line in block.splitlines() if not line.startswith("$ ")]
    assert len(lines) % 2 == 0, "each request line in the tour is followed by its reply"
    return list(zip(lines[0::2], lines[1::2], strict=True))


def flat(reply: Any) -> list[tuple[str, Any]]:
    """Every (key, value) pair at any depth of a reply."""
    pairs = []
    if isinstance(reply, dict):
        for key, value in reply.items():
            pairs.append((key, value))
            pairs += flat(value)
    elif isinstance(reply, list):
        for item in reply:
            pairs += flat(item)
    return pairs


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # the simulator's own seeded prices (no fixed prices), as `daytrade up` has them
    with RunningSystem(tmp_path_factory.mktemp("tour") / "daytrade-data") as s:
        yield s


def test_the_readme_tour_works_as_written(server):
    replies: dict[str, dict] = {}
    with LineClient(server.host, server.port) as conn:
        for request, shown in tour():
            line = request.replace(TOKEN, server.token)
            line = TXN_OF.sub(lambda m: str(replies[m.group(1)]["txn"]), line)
            reply = conn.ask(line)
            replies[reply["cmd"]] = reply
            got = (reply["cmd"], reply["ok"], reply.get("error", {}).get("code"))
            code = re.search(r'"code":"(\w+)"', shown)
            wanted = (re.search(r'"cmd":"(\w+)"', shown).group(1),
                      re.search(r'"ok":(true|false)', shown).group(1) == "true",
                      code.group(1) if code else None)
            assert got == wanted, (request, reply)
            actual = flat(reply)
            for key, value in LITERAL.findall(shown):
                assert (key, json.loads(value)) in actual, (request, key, value, reply)
