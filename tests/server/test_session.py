"""The gateway's session without sockets: lines and answers in, actions out (PROTOCOL.md).

Times are given to the session (ms) and to the login limiter (a fake clock), so nothing here
waits or reads a real clock.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from protocol.parser import MAX_LINE_BYTES
from server.auth import USER_LOCK_S, LoginLimiter
from server.session import OPERATOR, USER, GatewaySettings, Session, may_act_for
from server.session_actions import (
    CLOSE,
    PAUSE_READING,
    RESUME_READING,
    ActFor,
    AskAccountExists,
    CheckPassword,
    CollectStats,
    OpenAccount,
    PasswordCheck,
    Route,
    Send,
    SetPassword,
    WatchUser,
)
from server.txns import TxnAllocator

TOKEN = "operator-token-" + "x" * 30
NOW = 1_764_000_000_000
HOST = "192.0.2.7"


class FakeClock:
    """Seconds for the login limiter, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Peer:
    """A client address as Twisted gives it (the lockout is keyed by its host)."""

    def __init__(self, host: str = HOST, port: int = 40_000) -> None:
        self.host = host
        self.port = port


def new_session(peer: Peer | None = None, limiter: LoginLimiter | None = None,
                **settings: Any) -> Session:
    return Session(peer or Peer(), TOKEN, TxnAllocator(100), limiter or LoginLimiter(FakeClock()),
                   {"lines": 0, "connections": 0, "bad_lines": 0, "busy": 0,
                    "login_failures": 0}, GatewaySettings(**settings))


def send(session: Session, *lines: str, now: int = NOW) -> list[Any]:
    return session.receive("".join(line + "\n" for line in lines).encode(), now)


def replies(actions: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(a.data) for a in actions if isinstance(a, Send)]


def reply(actions: list[Any]) -> dict[str, Any]:
    (only,) = replies(actions)
    return only


def error_code(actions: list[Any]) -> str:
    return reply(actions)["error"]["code"]


def routed(actions: list[Any]) -> list[tuple[Any, ...]]:
    return [line for a in actions if isinstance(a, Route) for line in a.lines]


def of_type(actions: list[Any], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def operator(**settings: Any) -> Session:
    session = new_session(**settings)
    assert reply(send(session, f"AUTH,{TOKEN}"))["ok"]
    return session


def logged_in(user: str = "alice", **kwargs: Any) -> Session:
    session = new_session(**kwargs)
    (check,) = of_type(send(session, f"LOGIN,{user},{user}-secret"), CheckPassword)
    assert reply(session.password_checked(check, PasswordCheck.MATCHES, NOW))["ok"]
    return session


def prove_old_password(session: Session, user: str = "alice") -> None:
    (check,) = of_type(send(session, f"OLDPASSWD,{user},{user}-secret"), CheckPassword)
    assert reply(session.password_checked(check, PasswordCheck.MATCHES, NOW))["ok"]


# --- the access rule --------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "own", "user", "allowed"), [
    (OPERATOR, None, "bob", True),
    (OPERATOR, None, None, True),  # DUMPLOG of all users
    (USER, "alice", "alice", True),
    (USER, "alice", "bob", False),
    (USER, "alice", None, False),
    (USER, "alice", "Alice", False),  # ids are case-sensitive
    (None, None, "alice", False),
    (None, None, None, False),
])
def test_the_access_rule(role, own, user, allowed):
    assert may_act_for(role, own, user) is allowed


@pytest.mark.parametrize("line", ["ADD,alice,10.00", "QUOTE,alice,ABC", "DUMPLOG,out.xml",
                                  "WATCH,alice", "STATS", "PASSWD,alice,new-secret",
                                  "OLDPASSWD,alice,alice-secret"])
def test_before_login_only_session_commands_work(line):
    actions = send(new_session(), line)
    assert error_code(actions) == "unauthorized"
    assert routed(actions) == []


def test_ping_and_help_work_before_login():
    session = new_session()
    assert reply(send(session, "PING"))["result"] == {"pong": NOW}
    assert reply(send(session, "HELP,BUY"))["result"]["command"] == "BUY"


def test_operator_routes_lines_for_any_user_and_for_all_users():
    session = operator()
    actions = send(session, "[7] ADD,bob,10.00", "[8] DUMPLOG,all.xml")
    assert routed(actions) == [("bob", 7, "ADD", "[7] ADD,bob,10.00"),
                               (None, 8, "DUMPLOG", "[8] DUMPLOG,all.xml")]
    assert of_type(actions, Route)[0].stamp == NOW


def test_user_routes_lines_for_themself():
    actions = send(logged_in("alice"), "[5] QUOTE,alice,ABC")
    assert routed(actions) == [("alice", 5, "QUOTE", "[5] QUOTE,alice,ABC")]


def test_user_cannot_act_for_another_user():
    actions = send(logged_in("alice"), "ADD,bob,10.00")
    assert reply(actions)["error"] == {"code": "forbidden",
                                       "message": "alice may not act for user bob"}
    assert routed(actions) == []


def test_user_cannot_dump_all_users_logs():
    actions = send(logged_in("alice"), "DUMPLOG,all.xml")
    assert reply(actions)["error"]["message"] == "alice may not act for all users' logs"


@pytest.mark.parametrize("line", ["WATCH,alice", "STATS"])
def test_user_cannot_use_operator_commands(line):
    assert error_code(send(logged_in("alice"), line)) == "forbidden"


def test_a_bad_line_for_the_users_own_account_goes_to_their_shard_to_be_audited():
    actions = send(logged_in("alice"), "[9] BUY,alice,ABC,-5")
    assert routed(actions) == [("alice", 9, "BUY", "[9] BUY,alice,ABC,-5")]
    assert replies(actions) == []


def test_a_bad_line_for_another_user_is_answered_at_the_gateway():
    actions = send(logged_in("alice"), "[9] BUY,bob,ABC,-5")
    assert routed(actions) == []
    assert error_code(actions) == "bad_argument"


# --- txns -------------------------------------------------------------------------------------


def test_a_line_without_txn_gets_one_above_every_txn_seen():
    session = operator()
    actions = send(session, "[500] QUOTE,bob,ABC", "QUOTE,bob,ABC", "$ QUOTE,bob,XYZ")
    assert [line[1:] for line in routed(actions)] == [
        (500, "QUOTE", "[500] QUOTE,bob,ABC"), (501, "QUOTE", "[501] QUOTE,bob,ABC"),
        (502, "QUOTE", "[502] QUOTE,bob,XYZ")]


# --- AUTH, LOGIN, sign-up, lockout ------------------------------------------------------------


def test_auth_with_the_operator_token_makes_the_operator():
    session = new_session()
    actions = send(session, f"AUTH,{TOKEN}")
    assert reply(actions)["result"] == {"role": "operator"}
    assert of_type(actions, ActFor) == [ActFor(None)]
    assert session.role == OPERATOR


def test_auth_with_a_wrong_token_is_unauthorized():
    session = new_session()
    assert reply(send(session, "AUTH,not-the-token"))["error"] == {
        "code": "unauthorized", "message": "wrong operator token"}
    assert session.role is None


def test_login_asks_the_directory_and_reading_waits_for_its_answer():
    session = new_session()
    actions = send(session, "LOGIN,alice,alice-secret")
    assert [type(a) for a in actions] == [type(PAUSE_READING), CheckPassword]
    assert actions[1].command.user == "alice"


def test_login_with_the_right_password_acts_for_the_user():
    session = new_session()
    (check,) = of_type(send(session, "LOGIN,alice,alice-secret"), CheckPassword)
    actions = session.password_checked(check, PasswordCheck.MATCHES, NOW)
    assert reply(actions)["result"] == {"user": "alice", "signed_up": False}
    assert ActFor("alice") in actions and RESUME_READING in actions
    assert (session.role, session.user) == (USER, "alice")


def test_lines_after_a_login_wait_for_its_answer():
    session = new_session()
    actions = send(session, "LOGIN,alice,alice-secret", "[3] QUOTE,alice,ABC")
    assert routed(actions) == []
    (check,) = of_type(actions, CheckPassword)
    after = session.password_checked(check, PasswordCheck.MATCHES, NOW + 40)
    assert routed(after) == [("alice", 3, "QUOTE", "[3] QUOTE,alice,ABC")]
    assert of_type(after, Route)[0].stamp == NOW + 40


def test_login_with_a_wrong_password_is_unauthorized_without_saying_why():
    session = new_session()
    (check,) = of_type(send(session, "LOGIN,alice,wrong-pass"), CheckPassword)
    actions = session.password_checked(check, PasswordCheck.WRONG, NOW)
    assert reply(actions)["error"] == {"code": "unauthorized",
                                       "message": "wrong user id or password"}
    assert session.role is None


def test_first_login_of_a_new_id_signs_up():
    session = new_session()
    (check,) = of_type(send(session, "[4] LOGIN,newbie,newbie-secret"), CheckPassword)
    (open_account,) = session.password_checked(check, PasswordCheck.NO_PASSWORD, NOW)
    assert isinstance(open_account, OpenAccount) and open_account.command.user == "newbie"
    (set_password,) = session.account_opened(open_account, True, NOW)
    assert isinstance(set_password, SetPassword) and set_password.command.password == (
        "newbie-secret")
    done = session.password_set(set_password, NOW)
    assert reply(done)["txn"] == 4
    assert reply(done)["result"]["signed_up"] is True
    assert session.user == "newbie"


def test_login_to_an_account_the_operator_made_fails_like_a_wrong_password():
    session = new_session()
    (check,) = of_type(send(session, "LOGIN,made,made-secret"), CheckPassword)
    (open_account,) = session.password_checked(check, PasswordCheck.NO_PASSWORD, NOW)
    actions = session.account_opened(open_account, False, NOW)
    assert reply(actions)["error"]["message"] == "wrong user id or password"
    assert session.role is None


def fail_login(session: Session, user: str = "alice") -> list[Any]:
    actions = send(session, f"LOGIN,{user},wrong-pass")
    checks = of_type(actions, CheckPassword)
    if not checks:
        return actions
    return session.password_checked(checks[0], PasswordCheck.WRONG, NOW)


def test_five_failed_logins_close_the_connection():
    session = new_session()
    for _ in range(4):
        assert CLOSE not in fail_login(session)
    last = fail_login(session)
    assert error_code(last[:-1]) == "unauthorized"
    assert last[-1] == CLOSE


def test_failed_logins_pipelined_in_one_read_stop_at_the_fifth():
    actions = send(new_session(), *["AUTH,not-the-token"] * 7)
    assert [r["error"]["code"] for r in replies(actions)] == ["unauthorized"] * 5
    assert actions[-1] == CLOSE


def test_ten_failed_logins_lock_the_id_for_that_host_for_15_minutes():
    clock = FakeClock()
    limiter = LoginLimiter(clock)
    for _ in range(2):
        session = new_session(limiter=limiter)
        for _ in range(5):
            fail_login(session)
    locked = new_session(limiter=limiter)
    assert error_code(send(locked, "LOGIN,alice,alice-secret")) == "locked"
    clock.now += USER_LOCK_S
    assert of_type(send(new_session(limiter=limiter), "LOGIN,alice,alice-secret"),
                   CheckPassword)


def test_a_lock_holds_only_for_the_host_that_failed():
    limiter = LoginLimiter(FakeClock())
    for _ in range(2):
        session = new_session(Peer("192.0.2.66"), limiter)
        for _ in range(5):
            fail_login(session)
    owner = new_session(Peer(HOST), limiter)
    assert of_type(send(owner, "LOGIN,alice,alice-secret"), CheckPassword)


def test_a_directory_failure_during_login_is_internal_and_reading_goes_on():
    session = new_session()
    (check,) = of_type(send(session, "LOGIN,alice,alice-secret", "PING"), CheckPassword)
    actions = session.failed(check, NOW)
    assert [r.get("error", {}).get("code") for r in replies(actions)] == ["internal", None]
    assert session.role is None


# --- PASSWD and OLDPASSWD ---------------------------------------------------------------------


def test_user_passwd_without_the_current_password_is_refused():
    actions = send(logged_in("alice"), "PASSWD,alice,new-secret")
    assert error_code(actions) == "unauthorized"
    assert of_type(actions, AskAccountExists) == []


def test_user_changes_their_password_after_giving_the_current_one():
    session = logged_in("alice")
    prove_old_password(session)
    (ask,) = of_type(send(session, "PASSWD,alice,new-secret"), AskAccountExists)
    (store,) = session.account_exists(ask, True)
    assert isinstance(store, SetPassword) and store.command.password == "new-secret"
    assert reply(session.password_set(store, NOW))["result"] == {"user": "alice"}


def test_a_wrong_current_password_allows_no_passwd():
    session = logged_in("alice")
    (check,) = of_type(send(session, "OLDPASSWD,alice,wrong-pass"), CheckPassword)
    assert error_code(session.password_checked(check, PasswordCheck.WRONG, NOW)) == (
        "unauthorized")
    assert error_code(send(session, "PASSWD,alice,new-secret")) == "unauthorized"


def test_one_oldpasswd_allows_one_passwd():
    session = logged_in("alice")
    prove_old_password(session)
    (ask,) = of_type(send(session, "PASSWD,alice,new-secret"), AskAccountExists)
    session.password_set(*session.account_exists(ask, True), NOW)
    assert error_code(send(session, "PASSWD,alice,newer-secret")) == "unauthorized"


def test_user_cannot_change_another_users_password():
    assert reply(send(logged_in("alice"), "PASSWD,bob,new-secret"))["error"] == {
        "code": "forbidden", "message": "alice may not change the password of bob"}


def test_oldpasswd_is_only_for_a_users_own_password():
    assert error_code(send(operator(), "OLDPASSWD,alice,alice-secret")) == "forbidden"
    assert error_code(send(logged_in("alice"), "OLDPASSWD,bob,bob-secret")) == "forbidden"


def test_operator_sets_anyones_password():
    session = operator()
    (ask,) = of_type(send(session, "PASSWD,bob,new-secret"), AskAccountExists)
    assert of_type(session.account_exists(ask, True), SetPassword)


def test_passwd_for_an_unknown_user_fails_unknown_user():
    session = operator()
    (ask,) = of_type(send(session, "PASSWD,ghost,new-secret"), AskAccountExists)
    assert error_code(session.account_exists(ask, False)) == "unknown_user"


# --- WATCH and STATS --------------------------------------------------------------------------


def test_operator_watch_pushes_the_users_events_here():
    actions = send(operator(), "WATCH,alice")
    assert WatchUser("alice") in actions
    assert reply(actions)["result"] == {"user": "alice", "watching": True}


def test_stats_answers_with_the_collected_counters():
    session = operator()
    (collect,) = of_type(send(session, "[6] STATS"), CollectStats)
    answer = reply(session.stats_collected(collect, {"gateway": {"lines": 2}, "shards": []}))
    assert answer["txn"] == 6 and answer["result"] == {"gateway": {"lines": 2}, "shards": []}


# --- QUIT and end of input --------------------------------------------------------------------


def test_quit_replies_then_closes():
    actions = send(new_session(), "QUIT")
    assert reply(actions)["result"] == {"bye": True}
    assert actions[-1] == CLOSE


def test_quit_answers_every_earlier_request_first():
    session = operator()
    actions = send(session, "QUOTE,bob,ABC", "QUOTE,bob,XYZ", "QUIT")
    assert len(routed(actions)) == 2 and replies(actions) == []
    assert session.answered(1) == []
    last = session.answered(1)
    assert reply(last)["result"] == {"bye": True} and last[-1] == CLOSE


def test_lines_after_quit_are_never_read():
    session = operator()
    actions = send(session, "QUOTE,bob,ABC", "QUIT", "QUOTE,bob,XYZ")
    assert len(routed(actions)) == 1
    assert routed(session.answered(1)) == []


def test_end_of_input_closes_once_every_line_is_answered():
    session = operator()
    send(session, "QUOTE,bob,ABC")
    assert session.input_ended() == []
    assert session.answered(1) == [CLOSE]


def test_end_of_input_with_nothing_sent_closes():
    assert new_session().input_ended() == [CLOSE]


def test_a_last_line_cut_off_by_the_end_of_input_is_refused_not_applied():
    session = operator()
    session.receive(b"ADD,bob,10.00", NOW)
    actions = session.input_ended()
    assert reply(actions)["error"]["code"] == "bad_request"
    assert routed(actions) == [] and actions[-1] == CLOSE


def test_lines_after_a_login_are_answered_at_end_of_input():
    session = new_session()
    (check,) = of_type(send(session, "LOGIN,alice,alice-secret", "PING"), CheckPassword)
    assert session.input_ended() == []
    actions = session.password_checked(check, PasswordCheck.MATCHES, NOW)
    assert [r["cmd"] for r in replies(actions)] == ["LOGIN", "PING"]
    assert actions[-1] == CLOSE


def test_end_of_input_waits_for_stats():
    session = operator()
    (collect,) = of_type(send(session, "STATS"), CollectStats)
    assert session.input_ended() == []
    assert session.stats_collected(collect, {})[-1] == CLOSE


def test_end_of_input_after_quit_says_bye_once():
    session = operator()
    send(session, "QUOTE,bob,ABC", "QUIT")
    assert session.input_ended() == []
    assert [r["cmd"] for r in replies(session.answered(1))] == ["QUIT"]


# --- rate limit and busy ----------------------------------------------------------------------


def test_lines_over_the_rate_limit_are_busy_until_it_refills():
    session = operator(rate_limit=10, rate_burst=2)
    actions = send(session, "QUOTE,bob,A", "QUOTE,bob,B", "QUOTE,bob,C")
    assert len(routed(actions)) == 2
    assert reply(actions)["error"]["code"] == "busy"
    assert len(routed(send(session, "QUOTE,bob,D", now=NOW + 100))) == 1


def test_a_line_refused_by_a_full_shard_queue_is_busy():
    session = operator()
    (line,) = routed(send(session, "[12] BUY,bob,ABC,10.00"))
    answer = reply(session.line_refused(line))
    assert (answer["txn"], answer["cmd"], answer["error"]["code"]) == (12, "BUY", "busy")
    assert session.inflight == 0


def test_quit_after_a_refused_line_says_bye_once_the_list_is_performed():
    session = operator()
    actions = send(session, "QUOTE,bob,ABC", "QUIT")
    (line,) = routed(actions)
    assert CLOSE not in session.line_refused(line)
    bye = session.settle()
    assert reply(bye)["result"] == {"bye": True} and bye[-1] == CLOSE


# --- flow control -----------------------------------------------------------------------------


def test_too_many_lines_in_flight_pause_reading_until_half_are_answered():
    session = operator(max_in_flight=4)
    actions = send(session, *[f"QUOTE,bob,S{i}" for i in range(4)])
    assert actions[-1] == PAUSE_READING
    assert session.answered(1) == []
    assert session.answered(1) == [RESUME_READING]


def test_a_client_that_does_not_read_stops_being_read():
    session = operator()
    assert session.output_paused() == [PAUSE_READING]
    assert session.output_resumed() == [RESUME_READING]


def test_reading_stays_paused_while_any_reason_holds():
    session = operator(max_in_flight=1)
    assert send(session, "QUOTE,bob,ABC")[-1] == PAUSE_READING
    assert session.output_paused() == []
    assert session.answered(1) == []
    assert session.output_resumed() == [RESUME_READING]


# --- bad lines --------------------------------------------------------------------------------


def test_an_over_long_line_is_answered_once_and_the_next_line_still_works():
    session = operator()
    first = session.receive(b"x" * (MAX_LINE_BYTES + 10), NOW)
    assert error_code(first) == "bad_request"
    assert session.receive(b"x" * 100_000, NOW) == []
    assert reply(session.receive(b"xxx\nPING\n", NOW))["result"] == {"pong": NOW}


def test_a_line_of_exactly_1024_bytes_is_a_line():
    line = "PING" + " " * (MAX_LINE_BYTES - 4)
    assert reply(send(new_session(), line))["ok"]


def test_a_line_split_across_reads_is_one_line():
    session = operator()
    assert session.receive(b"QUOTE,bo", NOW) == []
    assert routed(session.receive(b"b,ABC\n", NOW))[0][0] == "bob"


def test_invalid_utf8_is_a_bad_request():
    assert error_code(new_session().receive(b"PING\xff\n", NOW)) == "bad_request"


def test_ten_garbage_lines_in_a_row_close_the_connection():
    actions = send(new_session(), *["garbage"] * 10)
    assert [r["error"]["code"] for r in replies(actions)] == ["unknown_command"] * 10
    assert actions[-1] == CLOSE


def test_a_good_line_resets_the_garbage_count():
    actions = send(new_session(), *["garbage"] * 9, "PING", *["garbage"] * 9)
    assert CLOSE not in actions


def test_nothing_is_read_after_the_session_closes():
    session = new_session()
    send(session, *["garbage"] * 10)
    assert send(session, "PING") == []
