"""HELP (docs/protocol.md): lists the commands or explains one, also before logging in."""

from __future__ import annotations

import pytest

from protocol.parser import _BUILDERS
from tests.support.lines import LineClient
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    with RunningSystem(tmp_path_factory.mktemp("help") / "data") as s, \
            LineClient(s.host, s.port) as c:
        yield c


def test_help_before_login_lists_every_command(conn):
    reply = conn.ask("HELP")
    assert reply["ok"]
    assert {row["command"] for row in reply["result"]["commands"]} == set(_BUILDERS)


def test_help_explains_one_command(conn):
    result = conn.ask("help, buy")["result"]
    assert result["command"] == "BUY"
    assert result["usage"] == "BUY,<user>,<SYM>,<amount>"
    assert "insufficient_funds" in result["errors"]


def test_help_for_an_unknown_command_is_a_bad_argument(conn):
    reply = conn.ask("HELP,FROB")
    assert reply["error"]["code"] == "bad_argument"
    assert "HELP lists them" in reply["error"]["message"]
