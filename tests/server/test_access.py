"""Access rules of PROTOCOL.md over the real socket: login, sign-up, acting for others, lockouts."""

from __future__ import annotations

import pytest

from tests.support.lines import LineClient
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    with RunningSystem(tmp_path_factory.mktemp("access") / "data", prices={"ABC": 1000}) as s:
        with LineClient(s.host, s.port) as op:
            assert op.ask(f"AUTH,{s.token}")["ok"]
            assert op.ask("ADD,carol,50.00")["ok"]  # created by the operator: no password
        yield s


def connect(system) -> LineClient:
    return LineClient(system.host, system.port)


@pytest.mark.parametrize("line", ["ADD,alice,10.00", "QUOTE,alice,ABC", "DISPLAY_SUMMARY,alice",
                                  "DUMPLOG,x.xml", "STATS", "WATCH,alice",
                                  "PASSWD,alice,password1"])
def test_before_login_only_session_commands_work(system, line):
    with connect(system) as conn:
        assert conn.ask(line)["error"]["code"] == "unauthorized"
        assert conn.ask("PING")["ok"]


def test_quit_replies_then_closes(system):
    with connect(system) as conn:
        assert conn.ask("QUIT")["ok"]
        assert conn.closed_by_server()


def test_first_login_signs_up_with_zero_cash(system):
    with connect(system) as conn:
        reply = conn.ask("LOGIN,dave,correct horse")
        assert reply["ok"] and reply["result"]["signed_up"] is True
        summary = conn.ask("DISPLAY_SUMMARY,dave")["result"]
        assert summary["cash"] == "0.00" and summary["transactions"] == []
    with connect(system) as conn:
        reply = conn.ask("LOGIN,dave,correct horse")
        assert reply["ok"] and reply["result"]["signed_up"] is False


def test_password_may_hold_commas_and_spaces(system):
    with connect(system) as conn:
        assert conn.ask("LOGIN,erin, pass,w,ord  ")["ok"]
    with connect(system) as conn:
        assert conn.ask("LOGIN,erin,pass,w,ord")["error"]["code"] == "unauthorized"
        assert conn.ask("LOGIN,erin, pass,w,ord  ")["ok"]


def test_short_password_is_refused(system):
    with connect(system) as conn:
        assert conn.ask("LOGIN,frank,short")["error"]["code"] == "bad_argument"


def test_account_created_by_the_operator_cannot_be_logged_into(system):
    with connect(system) as conn:
        assert conn.ask("LOGIN,carol,whatever123")["error"]["code"] == "unauthorized"


def test_operator_sets_a_password_then_the_user_can_log_in(system):
    with connect(system) as op:
        op.ask(f"AUTH,{system.token}")
        op.ask("ADD,gina,5.00")
        assert op.ask("PASSWD,gina,gina-secret")["ok"]
    with connect(system) as conn:
        assert conn.ask("LOGIN,gina,gina-secret")["ok"]
        assert conn.ask("DISPLAY_SUMMARY,gina")["result"]["cash"] == "5.00"


def test_user_cannot_act_for_another_user(system):
    with connect(system) as conn:
        conn.ask("LOGIN,hank,hank-secret")
        for line in ["ADD,carol,10.00", "DISPLAY_SUMMARY,carol", "BUY,carol,ABC,1.00",
                     "DUMPLOG,carol,x.xml", "PASSWD,carol,password1"]:
            assert conn.ask(line)["error"]["code"] == "forbidden", line


def test_user_cannot_use_operator_commands_or_dump_all_logs(system):
    with connect(system) as conn:
        conn.ask("LOGIN,ivan,ivan-secret")
        for line in ["STATS", "WATCH,ivan", "DUMPLOG,all.xml"]:
            assert conn.ask(line)["error"]["code"] == "forbidden", line


def test_user_acts_for_themself_and_dumps_their_own_log(system):
    with connect(system) as conn:
        conn.ask("LOGIN,judy,judy-secret")
        assert conn.ask("ADD,judy,10.00")["ok"]
        reply = conn.ask("DUMPLOG,judy,judy.xml")
        assert reply["ok"] and reply["result"]["events"] >= 2


def test_user_changes_their_own_password(system):
    with connect(system) as conn:
        conn.ask("LOGIN,kim,first-secret")
        assert conn.ask("PASSWD,kim,second-secret")["ok"]
    with connect(system) as conn:
        assert conn.ask("LOGIN,kim,first-secret")["error"]["code"] == "unauthorized"
        assert conn.ask("LOGIN,kim,second-secret")["ok"]


def test_wrong_operator_token_is_unauthorized(system):
    with connect(system) as conn:
        assert conn.ask("AUTH,not-the-token")["error"]["code"] == "unauthorized"


def test_five_failed_logins_close_the_connection(system):
    with connect(system) as conn:
        conn.ask("LOGIN,lena,lena-secret")
    with connect(system) as conn:
        for _ in range(4):
            assert conn.ask("LOGIN,lena,wrong-pass")["error"]["code"] == "unauthorized"
        conn.send("LOGIN,lena,wrong-pass")
        assert conn.reply()["error"]["code"] == "unauthorized"
        assert conn.closed_by_server()


def test_ten_failed_logins_lock_the_user_id(system):
    with connect(system) as conn:
        conn.ask("LOGIN,mona,mona-secret")
    for _ in range(2):
        with connect(system) as conn:
            for _ in range(5):
                conn.send("LOGIN,mona,wrong-pass")
                conn.reply()
    with connect(system) as conn:
        reply = conn.ask("LOGIN,mona,mona-secret")  # even the right password
        assert reply["error"]["code"] == "locked"
    security_log = (system.data_dir / "security.log").read_text()
    assert "failed LOGIN for mona" in security_log
    assert "mona-secret" not in security_log and "wrong-pass" not in security_log


def test_operator_watch_receives_the_users_pushed_events(system):
    with connect(system) as op, connect(system) as user:
        op.ask(f"AUTH,{system.token}")
        user.ask("LOGIN,nina,nina-secret")
        user.ask("ADD,nina,100.00")
        assert op.ask("WATCH,nina")["ok"]
        assert user.ask("SET_BUY_AMOUNT,nina,ABC,50.00")["ok"]
        assert user.ask("SET_BUY_TRIGGER,nina,ABC,20.00")["ok"]  # ABC is at 10.00: fires
        event = user.reply()
        assert event["event"] == "trigger_fired" and event["symbol"] == "ABC"
        watched = op.reply()
        assert watched["event"] == "trigger_fired" and watched["user"] == "nina"


def test_quit_answers_every_earlier_request_first(system):
    with connect(system) as conn:
        conn.send(f"AUTH,{system.token}\n[1] ADD,quentin,1.00\n[2] QUOTE,quentin,ABC\nQUIT")
        replies = [conn.reply() for _ in range(4)]
        assert [r["cmd"] for r in replies] == ["AUTH", "ADD", "QUOTE", "QUIT"]
        assert all(r["ok"] for r in replies)
        assert conn.closed_by_server()
