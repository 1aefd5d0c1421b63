"""DUMPLOG checks: the schema, and each user's cash replayed from the log's accountTransactions."""

from pathlib import Path

import pytest

from bench.validate import (
    CashSummary,
    cash_summary,
    check_cash,
    scan_log,
    states_between,
    validate_file,
    validation_report,
)

TS = 1764072000000


def _account(txn: int, action: str, user: str, funds: str) -> str:
    return (f"<accountTransaction><timestamp>{TS}</timestamp><server>s1</server>"
            f"<transactionNum>{txn}</transactionNum><action>{action}</action>"
            f"<username>{user}</username><funds>{funds}</funds></accountTransaction>")


def _command(txn: int, command: str, user: str) -> str:
    return (f"<userCommand><timestamp>{TS}</timestamp><server>s1</server>"
            f"<transactionNum>{txn}</transactionNum><command>{command}</command>"
            f"<username>{user}</username></userCommand>")


def _log(tmp_path: Path, *events: str, name: str = "log.xml") -> Path:
    path = tmp_path / name
    path.write_text('<?xml version="1.0"?>\n<log>\n' + "\n".join(events) + "\n</log>\n")
    return path


def test_a_valid_log_passes_the_schema(tmp_path):
    scan = scan_log(_log(tmp_path, _command(1, "ADD", "alice"),
                         _account(1, "add", "alice", "100.00")))
    assert scan.schema_ok
    assert scan.events == 2
    assert scan.by_kind == {"userCommand": 1, "accountTransaction": 1}


def test_account_transactions_sum_to_each_user_s_cash(tmp_path):
    scan = scan_log(_log(tmp_path,
                         _account(1, "add", "alice", "100.00"),
                         _account(2, "add", "bob", "5.5"),
                         _account(3, "remove", "alice", "33.33"),
                         _account(4, "add", "alice", "0.01")))
    assert scan.cash == {"alice": 6668, "bob": 550}


def test_an_unknown_command_name_fails_the_schema(tmp_path):
    scan = scan_log(_log(tmp_path, _command(1, "TELEPORT", "alice")))
    assert not scan.schema_ok
    assert "TELEPORT" in scan.schema_error


def test_a_missing_required_field_fails_the_schema(tmp_path):
    event = _account(1, "add", "alice", "1.00").replace("<server>s1</server>", "")
    assert not scan_log(_log(tmp_path, event)).schema_ok


def test_a_truncated_log_fails(tmp_path):
    path = tmp_path / "cut.xml"
    path.write_text('<?xml version="1.0"?>\n<log>\n' + _command(1, "ADD", "alice"))
    scan = scan_log(path)
    assert not scan.schema_ok


def test_a_missing_file_fails(tmp_path):
    assert not scan_log(tmp_path / "nope.xml").schema_ok


def test_an_unreadable_action_is_reported(tmp_path):
    scan = scan_log(_log(tmp_path, _account(1, "borrow", "alice", "1.00")))
    assert scan.schema_ok  # the schema allows any string
    assert len(scan.bad_transactions) == 1
    assert not validation_report(scan, None)["ok"]


def _summary(cash, total=0, deltas=()):
    return CashSummary(cash, total, tuple(deltas))


def test_cash_matching_the_summary_passes():
    same = {"a": _summary(100, 1, [100]), "b": _summary(0)}
    check = check_cash({"a": 100, "b": 0}, ["a", "b"], same, same)
    assert check.ok
    assert (check.users, check.matched, check.moved) == (2, 2, 0)


def test_cash_differing_from_the_summary_fails():
    same = {"a": _summary(100, 1, [100])}
    check = check_cash({"a": 150}, ["a"], same, same)
    assert not check.ok
    assert check.mismatch_count == 1
    assert check.mismatches[0]["log_cents"] == 150
    assert check.mismatches[0]["summary_cents"] == 100


def test_log_cash_held_between_the_summaries_passes():
    # Two reservations expired between the summaries: 100 -> 130 -> 180.
    before = {"a": _summary(100, 3, [-50, -50, 200])}
    after = {"a": _summary(180, 5, [50, 30, -50, -50, 200])}
    for logged in (100, 130, 180):
        check = check_cash({"a": logged}, ["a"], before, after)
        assert check.ok and check.moved == 1, logged


def test_log_cash_never_held_between_the_summaries_fails():
    before = {"a": _summary(100, 3, [-50, -50, 200])}
    after = {"a": _summary(180, 5, [50, 30, -50, -50, 200])}
    assert not check_cash({"a": 150}, ["a"], before, after).ok


def test_summaries_whose_transactions_do_not_add_up_fail():
    # The newest change claims +30 but cash moved by +80.
    before = {"a": _summary(100, 1, [100])}
    after = {"a": _summary(180, 2, [30, 100])}
    check = check_cash({"a": 180}, ["a"], before, after)
    assert not check.ok
    assert "do not lead" in check.mismatches[0]["reason"]


def test_more_changes_than_a_summary_lists_leave_the_user_unverified():
    before = {"a": _summary(0, 0)}
    after = {"a": _summary(2100, 21, [100] * 20)}
    check = check_cash({"a": 5}, ["a"], before, after)
    assert check.ok and check.unverified == 1 and check.matched == 0


def test_a_user_the_server_does_not_know_has_no_cash():
    assert check_cash({}, ["ghost"], {"ghost": None}, {"ghost": None}).ok
    assert not check_cash({"ghost": 5}, ["ghost"], {"ghost": None}, {"ghost": None}).ok


def test_states_between_walks_back_the_newest_changes():
    before = _summary(100, 1, [100])
    after = _summary(70, 3, [-10, -20, 100])
    assert states_between(before, after) == [70, 80, 100]
    assert states_between(after, after) == [70]
    assert states_between(None, None) == [0]


def test_cash_summary_reads_cents_and_signed_deltas():
    summary = cash_summary({"cash": "12.34", "transactions_total": 7,
                            "transactions": [{"cash_delta": "-1.50"}, {"cash_delta": "2.00"}]})
    assert summary == CashSummary(1234, 7, (-150, 200))
    assert cash_summary(None) is None
    with pytest.raises(ValueError):
        cash_summary({"cash": "-1"})


def test_validate_file_reports_a_valid_log(tmp_path):
    report = validate_file(_log(tmp_path, _account(1, "add", "alice", "1.00")))
    assert report["ok"] and report["schema_ok"] and report["events"] == 1


def test_the_report_fails_when_cash_differs(tmp_path):
    scan = scan_log(_log(tmp_path, _account(1, "add", "alice", "1.00")))
    nothing = {"alice": CashSummary(0, 0, ())}
    report = validation_report(scan, check_cash(scan.cash, ["alice"], nothing, nothing))
    assert report["schema_ok"] and not report["ok"]
    assert report["cash"]["mismatches"] == 1
