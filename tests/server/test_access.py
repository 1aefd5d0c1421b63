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


def test_user_changes_their_own_password_after_giving_the_current_one(system):
    with connect(system) as conn:
        conn.ask("LOGIN,kim,first-secret")
        assert conn.ask("OLDPASSWD,kim,first-secret")["ok"]
        assert conn.ask("PASSWD,kim,second,secret")["ok"]
    with connect(system) as conn:
        assert conn.ask("LOGIN,kim,first-secret")["error"]["code"] == "unauthorized"
        assert conn.ask("LOGIN,kim,second,secret")["ok"]


def test_user_passwd_without_the_current_password_is_refused(system):
    with connect(system) as conn:
        conn.ask("LOGIN,kurt,kurt-secret")
        assert conn.ask("PASSWD,kurt,new-secret")["error"]["code"] == "unauthorized"
    with connect(system) as conn:
        assert conn.ask("LOGIN,kurt,kurt-secret")["ok"]


def test_wrong_current_password_allows_no_passwd(system):
    with connect(system) as conn:
        conn.ask("LOGIN,kara,kara-secret")
        assert conn.ask("OLDPASSWD,kara,not-her-secret")["error"]["code"] == "unauthorized"
        assert conn.ask("PASSWD,kara,new-secret")["error"]["code"] == "unauthorized"
    with connect(system) as conn:
        assert conn.ask("LOGIN,kara,kara-secret")["ok"]


def test_one_oldpasswd_allows_one_passwd(system):
    with connect(system) as conn:
        conn.ask("LOGIN,kent,kent-secret")
        conn.ask("OLDPASSWD,kent,kent-secret")
        assert conn.ask("PASSWD,kent,second-secret")["ok"]
        assert conn.ask("PASSWD,kent,third-secret")["error"]["code"] == "unauthorized"
    with connect(system) as conn:
        assert conn.ask("LOGIN,kent,second-secret")["ok"]


def test_sign_up_reply_echoes_the_exact_id_and_says_ids_are_case_sensitive(system):
    with connect(system) as conn:
        result = conn.ask("LOGIN,Olga_X,olga-secret")["result"]
        assert result["user"] == "Olga_X" and result["signed_up"] is True
        assert "case-sensitive" in result["note"] and "'Olga_X'" in result["note"]


def test_login_to_an_account_without_password_fails_like_a_wrong_password(system):
    with connect(system) as conn:
        conn.ask("LOGIN,lars,lars-secret")
    with connect(system) as conn:
        no_password = conn.ask("LOGIN,carol,whatever123")["error"]
        wrong_password = conn.ask("LOGIN,lars,whatever123")["error"]
        assert no_password == wrong_password == {"code": "unauthorized",
                                                 "message": "wrong user id or password"}


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


def fail_ten_logins(system, user: str, source_host: str = "127.0.0.1") -> None:
    for _ in range(2):
        with LineClient(system.host, system.port, source_host=source_host) as conn:
            for _ in range(5):
                conn.send(f"LOGIN,{user},wrong-pass")
                conn.reply()


def test_ten_failed_logins_lock_the_user_id_for_that_address(system):
    with connect(system) as conn:
        conn.ask("LOGIN,mona,mona-secret")
    fail_ten_logins(system, "mona")
    with connect(system) as conn:
        reply = conn.ask("LOGIN,mona,mona-secret")  # even the right password
        assert reply["error"]["code"] == "locked"
    security_log = (system.data_dir / "security.log").read_text()
    assert "failed LOGIN for mona" in security_log
    assert "mona-secret" not in security_log and "wrong-pass" not in security_log


def test_failed_logins_from_another_address_do_not_lock_the_owner_out(system):
    with connect(system) as conn:
        conn.ask("LOGIN,mira,mira-secret")
    fail_ten_logins(system, "mira", source_host="127.0.0.2")
    with LineClient(system.host, system.port, source_host="127.0.0.2") as stranger:
        assert stranger.ask("LOGIN,mira,mira-secret")["error"]["code"] == "locked"
    with connect(system) as owner:
        assert owner.ask("LOGIN,mira,mira-secret")["ok"]


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
