"""End of input from a client (a half-close: `nc -N`, a pipe, Ctrl-D) is a QUIT (PROTOCOL.md):
every command already received is answered before the server closes."""

from __future__ import annotations

import pytest

from tests.support.lines import LineClient
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    with RunningSystem(tmp_path_factory.mktemp("eof") / "data", prices={"ABC": 1000}) as s:
        yield s


def piped(system, text: str) -> list[dict]:
    """Send `text` and end the input at once, like `printf ... | nc -N`; every reply."""
    with LineClient(system.host, system.port) as conn:
        conn.sock.sendall(text.encode())
        conn.end_input()
        return conn.replies_until_closed()


def test_end_of_input_answers_every_command_then_closes(system):
    replies = piped(system, f"AUTH,{system.token}\nADD,pia,100.00\nBUY,pia,ABC,20.00\n"
                            "COMMIT_BUY,pia\nDISPLAY_SUMMARY,pia\n")
    assert [(r["cmd"], r["ok"]) for r in replies] == [
        ("AUTH", True), ("ADD", True), ("BUY", True), ("COMMIT_BUY", True),
        ("DISPLAY_SUMMARY", True)]
    assert replies[-1]["result"]["holdings"] == {"ABC": 2}


def test_a_last_line_cut_off_by_the_end_of_input_is_refused_not_applied(system):
    replies = piped(system, f"AUTH,{system.token}\nADD,pete,5.00")
    assert [(r["cmd"], r["ok"]) for r in replies] == [("AUTH", True), (None, False)]
    assert replies[1]["error"]["code"] == "bad_request"
    check = piped(system, f"AUTH,{system.token}\nDISPLAY_SUMMARY,pete\n")
    assert check[1]["error"]["code"] == "unknown_user"  # the ADD was never applied


def test_lines_after_a_login_are_answered_at_end_of_input(system):
    # LOGIN pauses reading while the password is checked; what came after it still counts
    replies = piped(system, "LOGIN,paula,paula-secret\nADD,paula,1.00\nPING\n")
    # replies of different kinds need not keep request order (PROTOCOL.md): compare as sets
    assert replies[0]["cmd"] == "LOGIN"
    assert sorted((r["cmd"], r["ok"]) for r in replies) == [("ADD", True), ("LOGIN", True),
                                                            ("PING", True)]


def test_session_commands_waiting_on_the_server_are_answered_at_end_of_input(system):
    replies = piped(system, f"AUTH,{system.token}\nADD,pam,1.00\nPASSWD,pam,pam-secret\nSTATS\n")
    assert sorted((r["cmd"], r["ok"]) for r in replies) == [
        ("ADD", True), ("AUTH", True), ("PASSWD", True), ("STATS", True)]


def test_end_of_input_with_nothing_sent_closes(system):
    assert piped(system, "") == []


def test_end_of_input_after_quit_says_bye_once(system):
    replies = piped(system, f"AUTH,{system.token}\nADD,quinn,1.00\nQUIT\n")
    assert [r["cmd"] for r in replies] == ["AUTH", "ADD", "QUIT"]
