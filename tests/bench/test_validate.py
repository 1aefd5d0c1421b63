"""DUMPLOG checks: the schema, and each user's cash replayed from the log's accountTransactions."""

from pathlib import Path

import pytest

from bench.validate import check_cash, scan_log, summary_cash, validate_file, validation_report

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


def test_cash_matching_the_summary_passes():
    check = check_cash({"a": 100, "b": 0}, ["a", "b"], {"a": 100, "b": 0}, {"a": 100, "b": 0})
    assert check.ok
    assert (check.users, check.matched, check.moved) == (2, 2, 0)


def test_cash_differing_from_the_summary_fails():
    check = check_cash({"a": 150}, ["a"], {"a": 100}, {"a": 100})
    assert not check.ok
    assert check.mismatches == [{"user": "a", "log_cents": 150, "summary_cents": 100,
                                 "summary_before_cents": 100}]


def test_a_user_whose_cash_moved_during_the_check_matches_either_summary():
    check = check_cash({"a": 100}, ["a"], {"a": 100}, {"a": 250})
    assert check.ok
    assert check.moved == 1


def test_a_user_the_server_does_not_know_has_no_cash():
    assert check_cash({}, ["ghost"], {"ghost": None}, {"ghost": None}).ok
    assert not check_cash({"ghost": 5}, ["ghost"], {"ghost": None}, {"ghost": None}).ok


def test_summary_cash_reads_cents():
    assert summary_cash({"cash": "12.34"}) == 1234
    assert summary_cash(None) is None
    with pytest.raises(ValueError):
        summary_cash({"cash": "-1"})


def test_validate_file_reports_a_valid_log(tmp_path):
    report = validate_file(_log(tmp_path, _account(1, "add", "alice", "1.00")))
    assert report["ok"] and report["schema_ok"] and report["events"] == 1


def test_the_report_fails_when_cash_differs(tmp_path):
    scan = scan_log(_log(tmp_path, _account(1, "add", "alice", "1.00")))
    report = validation_report(scan, check_cash(scan.cash, ["alice"], {"alice": 0},
                                                {"alice": 0}))
    assert report["schema_ok"] and not report["ok"]
    assert report["cash"]["mismatches"] == 1
