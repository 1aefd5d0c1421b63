"""The replay plan: workload lines grouped by user in file order, DUMPLOG held back."""

from pathlib import Path

from bench.plan import build_plan, spread
from bench.workload import read_workload


def _plan_of(tmp_path: Path, text: str):
    path = tmp_path / "w.txt"
    path.write_text(text)
    return build_plan(read_workload(path))


def test_bracket_lines_keep_their_txn(tmp_path):
    plan = _plan_of(tmp_path, "[7] ADD,alice,10.00\n[9] QUOTE,alice,ABC\n")
    assert list(plan.users[0].txns) == [7, 9]
    assert plan.users[0].texts == ["ADD,alice,10.00", "QUOTE,alice,ABC"]


def test_dollar_lines_are_numbered_by_line(tmp_path):
    plan = _plan_of(tmp_path, "$ ADD,alice,10.00\n\n$ QUOTE,alice,ABC\n")
    assert list(plan.users[0].txns) == [1, 3]
    assert plan.users[0].texts == ["ADD,alice,10.00", "QUOTE,alice,ABC"]


def test_commands_are_grouped_by_user_in_file_order(tmp_path):
    plan = _plan_of(tmp_path, "[1] ADD,a,1.00\n[2] ADD,b,2.00\n[3] QUOTE,a,X\n"
                              "[4] QUOTE,b,Y\n[5] BUY,a,X,1.00\n")
    assert [u.user for u in plan.users] == ["a", "b"]
    assert list(plan.users[0].txns) == [1, 3, 5]
    assert list(plan.users[1].txns) == [2, 4]


def test_command_kinds_name_each_command(tmp_path):
    plan = _plan_of(tmp_path, "[1] ADD,a,1.00\n[2] quote,a,X\n[3] ADD,a,1.00\n")
    assert [plan.kinds[k] for k in plan.users[0].kinds] == ["ADD", "QUOTE", "ADD"]


def test_dumplog_lines_are_held_back_in_file_order(tmp_path):
    plan = _plan_of(tmp_path, "[1] ADD,a,1.00\n[2] DUMPLOG,a,./a.xml\n[3] ADD,b,1.00\n"
                              "[4] DUMPLOG,./all.xml\n")
    assert [(d.txn, d.user) for d in plan.deferred] == [(2, "a"), (4, None)]
    assert [list(u.txns) for u in plan.users] == [[1], [3]]
    assert plan.commands == 2
    assert plan.total == 4


def test_order_lists_the_user_of_each_command_in_file_order(tmp_path):
    plan = _plan_of(tmp_path, "[1] ADD,a,1.00\n[2] ADD,b,2.00\n[3] QUOTE,a,X\n")
    assert list(plan.order) == [0, 1, 0]
    assert list(plan.users[0].positions) == [0, 2]
    assert list(plan.users[1].positions) == [1]


def test_a_workload_listing_one_user_after_another_is_released_in_turn(tmp_path):
    plan = _plan_of(tmp_path, "$ ADD,a,1.00\n$ QUOTE,a,X\n$ BUY,a,X,1.00\n"
                              "$ ADD,b,2.00\n$ QUOTE,b,Y\n")
    assert list(plan.order) == [0, 1, 0, 1, 0]
    assert list(plan.users[0].positions) == [0, 2, 4]
    assert list(plan.users[1].positions) == [1, 3]
    assert list(plan.users[0].txns) == [1, 2, 3]  # the txns stay the file's


def test_a_single_user_workload_keeps_file_order(tmp_path):
    plan = _plan_of(tmp_path, "$ ADD,a,1.00\n$ QUOTE,a,X\n")
    assert list(plan.order) == [0, 0]
    assert list(plan.users[0].positions) == [0, 1]


def test_a_line_without_a_user_still_goes_out(tmp_path):
    plan = _plan_of(tmp_path, "[1] ADD\n[2] ADD,a,1.00\n")
    assert plan.commands == 2
    assert plan.users[0].user == ""


def test_shipped_ten_user_workload_holds_back_its_dumplog():
    plan = build_plan(read_workload(Path(__file__).parents[2] / "bench" / "workloads"
                                    / "10user.txt"))
    assert len(plan.users) == 10
    assert plan.total == 10_000
    assert [d.command for d in plan.deferred] == ["DUMPLOG"]


def test_users_are_dealt_round_robin_over_connections():
    assert spread(5, 2) == [[0, 2, 4], [1, 3]]


def test_no_more_connections_than_users():
    assert spread(2, 8) == [[0], [1]]


def test_one_connection_when_there_are_no_users():
    assert spread(0, 4) == [[]]
