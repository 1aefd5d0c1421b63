"""Every bad line gets the right error code over the real socket, and changes nothing."""

from __future__ import annotations

import pytest

from tests.support.lines import LineClient
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    with RunningSystem(tmp_path_factory.mktemp("bad") / "data", prices={"ABC": 1000}) as s:
        yield s


@pytest.fixture
def operator(system):
    with LineClient(system.host, system.port) as conn:
        assert conn.ask(f"AUTH,{system.token}")["ok"]
        yield conn


def summary(conn: LineClient, user: str) -> dict:
    reply = conn.ask(f"DISPLAY_SUMMARY,{user}")
    assert reply["ok"], reply
    result = reply["result"]
    return {k: v for k, v in result.items() if k != "transactions"} | {
        "transactions": [(t["kind"], t["cash_delta"]) for t in result["transactions"]]}


BAD_LINES = [
    # (line, code) -- every one for the user "victim", whose state must not change
    ("ADD,victim", "bad_argument"),  # wrong arity
    ("ADD,victim,1,2", "bad_argument"),
    ("BUY,victim,ABC", "bad_argument"),
    ("COMMIT_BUY", "bad_argument"),
    ("ADD,victim,-5", "bad_argument"),
    ("ADD,victim,0", "bad_argument"),
    ("ADD,victim,0.00", "bad_argument"),
    ("ADD,victim,NaN", "bad_argument"),
    ("ADD,victim,inf", "bad_argument"),
    ("ADD,victim,1e309", "bad_argument"),
    ("ADD,victim,1_000", "bad_argument"),
    ("ADD,victim,١٠٠", "bad_argument"),  # Arabic-Indic digits
    ("ADD,victim,10.001", "bad_argument"),
    ("ADD,victim,", "bad_argument"),
    ("ADD,victim," + "9" * 5000, "bad_request"),  # over 1024 bytes: the line itself is refused
    ("ADD,victim,99999999999", "bad_argument"),  # 11 digits
    ("BUY,victim,abc,10.00", "bad_argument"),
    ("BUY,victim,ABCD,10.00", "bad_argument"),
    ("BUY,victim,A$C,10.00", "bad_argument"),
    ("BUY,victim,<A>,10.00", "bad_argument"),
    ("SET_BUY_TRIGGER,victim,ABC,-1", "bad_argument"),
    ("ADD,vic$tim,10.00", "bad_argument"),
    ("ADD,vic.tim,10.00", "bad_argument"),
    ("ADD,vic]]>tim,10.00", "bad_argument"),
    ("ADD,<victim>,10.00", "bad_argument"),
    ("ADD,vic\x07tim,10.00", "bad_argument"),
    ("ADD," + "v" * 33 + ",10.00", "bad_argument"),
    ("DISPLAY_SUMMARY,victim,abc", "bad_argument"),
    ("FROB,victim,10.00", "unknown_command"),
    ("", "bad_request"),
    ("[abc] ADD,victim,10.00", "bad_request"),
    ("[0] ADD,victim,10.00", "bad_request"),
    ("[-3] ADD,victim,10.00", "bad_request"),
    ("[12 ADD,victim,10.00", "bad_request"),
]


@pytest.mark.parametrize(("line", "code"), BAD_LINES, ids=[repr(x[0])[:40] for x in BAD_LINES])
def test_bad_line_gets_its_error_code_and_changes_nothing(operator, line, code):
    operator.ask("ADD,victim,100.00")
    before = summary(operator, "victim")
    reply = operator.ask(line)
    assert reply["ok"] is False
    assert reply["error"]["code"] == code, reply
    assert reply["error"]["message"]
    assert summary(operator, "victim") == before


def test_amount_error_reply_says_what_is_wrong(operator):
    negative = operator.ask("ADD,victim,-5.00")["error"]
    assert negative["code"] == "bad_argument"
    assert negative["message"].startswith("amount must be positive and written without a sign")
    huge = operator.ask("ADD,victim," + "1" * 23)["error"]
    assert huge["message"].startswith("amount is too large: at most 9999999999.99")


def test_invalid_utf8_is_a_bad_request(operator):
    reply = operator.ask(b"ADD,victim,\xff\xfe10.00")
    assert reply["error"]["code"] == "bad_request"
    assert "UTF-8" in reply["error"]["message"]


def test_nul_inside_a_line_is_refused(operator):
    assert operator.ask(b"ADD,vic\x00tim,10.00")["error"]["code"] == "bad_argument"


def test_over_long_line_is_answered_and_the_next_line_still_works(operator):
    reply = operator.ask("x" * 100_000)
    assert reply["error"]["code"] == "bad_request"
    assert operator.ask("PING")["ok"]


def test_line_of_exactly_1024_bytes_is_accepted_as_a_line(operator):
    line = "PING" + " " * 1020
    assert len(line) == 1024
    assert operator.ask(line)["ok"]


def test_ten_garbage_lines_in_a_row_close_the_connection(system):
    with LineClient(system.host, system.port) as conn:
        for _ in range(9):
            assert conn.ask("garbage")["error"]["code"] == "unknown_command"
        conn.send("garbage")
        assert conn.reply()["error"]["code"] == "unknown_command"
        assert conn.closed_by_server()


def test_good_line_resets_the_garbage_count(system):
    with LineClient(system.host, system.port) as conn:
        for _ in range(3):
            for _ in range(9):
                conn.ask("garbage")
            assert conn.ask("PING")["ok"]
        assert conn.ask("PING")["ok"]


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a\x00b", "..", ".",
                                  "dir/sub/name.xml", "-rf", "x" * 300])
def test_dumplog_filename_stays_inside_the_dump_directory(system, operator, name):
    reply = operator.ask(f"DUMPLOG,victim,{name}")
    if reply["ok"]:
        path = reply["result"]["path"]
        assert path.startswith(str(system.data_dir / "dumps") + "/")
        assert ".." not in path[len(str(system.data_dir)):]
    else:
        assert reply["error"]["code"] == "bad_argument"


def test_dumplog_to_a_planted_symlink_replaces_the_link(system, operator, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    link = system.data_dir / "dumps" / "planted.xml"
    link.symlink_to(outside)
    reply = operator.ask("DUMPLOG,victim,planted.xml")
    assert reply["ok"], reply
    assert outside.read_text() == "precious"
    assert not link.is_symlink()


def test_error_replies_carry_the_txn_and_command(operator):
    reply = operator.ask("[77] BUY,victim,ABC,-1")
    assert (reply["txn"], reply["cmd"], reply["error"]["code"]) == (77, "BUY", "bad_argument")
