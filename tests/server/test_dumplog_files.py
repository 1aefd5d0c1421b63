"""DUMPLOG's files over the wire: names reduced to a safe base name, a replaced file said so."""

from __future__ import annotations

import pytest

from tests.support.lines import LineClient
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def operator(tmp_path_factory):
    data = tmp_path_factory.mktemp("dumps") / "data"
    with RunningSystem(data, prices={"ABC": 1000}) as s, LineClient(s.host, s.port) as op:
        assert op.ask(f"AUTH,{s.token}")["ok"]
        assert op.ask("ADD,alice,10.00")["ok"]
        yield op


def test_a_first_dump_of_a_name_replaces_nothing(operator):
    result = operator.ask("DUMPLOG,alice,first.xml")["result"]
    assert result["path"].endswith("first.xml") and "replaced" not in result


def test_two_names_that_reduce_to_one_file_say_the_second_replaced_it(operator):
    first = operator.ask("DUMPLOG,alice,a/same.xml")["result"]
    second = operator.ask("DUMPLOG,alice,b/same.xml")["result"]
    assert first["path"] == second["path"] and second["replaced"] is True
