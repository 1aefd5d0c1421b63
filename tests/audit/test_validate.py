"""validate_log: a DUMPLOG file checked against the packaged logfile.xsd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.logfile import log_schema
from server.audit import validate
from server.audit.validate import validate_log
from server.audit.xml_writer import write_log
from server.shards.audit_events import QUOTE_SERVER, USER_COMMAND, AuditEvent

T0 = 1167631200000
HEADER = '<?xml version="1.0"?>\n<log>\n'


def user_command(txn: int, command: str = "ADD", symbol: str | None = None) -> AuditEvent:
    return AuditEvent(USER_COMMAND, txn, 0, T0, "gateway", "alice", command, symbol, 100)


def write(path: Path, events: Iterator[AuditEvent] | list[AuditEvent]) -> Path:
    with path.open("wb") as out:
        write_log(events, out)
    return path


def test_the_schema_is_loaded_from_the_protocol_package() -> None:
    assert log_schema() is log_schema()
    assert log_schema().validate is not None


def test_a_valid_log_has_no_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "log.xml", [user_command(1), user_command(2, "BUY", "ABC")])
    assert validate_log(path) == []


def test_validate_accepts_a_string_path(tmp_path: Path) -> None:
    path = write(tmp_path / "log.xml", [user_command(1)])
    assert validate_log(str(path)) == []


def test_an_unknown_command_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "log.xml", [user_command(1), user_command(2, "LOGIN")])
    errors = validate_log(path)
    assert len(errors) == 1
    assert "command" in errors[0] and "LOGIN" in errors[0]


def test_errors_name_their_line(tmp_path: Path) -> None:
    path = write(tmp_path / "log.xml", [user_command(1), user_command(2, "LOGIN")])
    line = path.read_text().splitlines().index("\t\t<command>LOGIN</command>") + 1
    assert validate_log(path)[0].startswith(f"line {line}:")


def test_every_error_is_listed(tmp_path: Path) -> None:
    path = write(tmp_path / "log.xml", [user_command(1, symbol="TOOLONG"), user_command(0)])
    errors = validate_log(path)
    assert len(errors) == 2
    assert "stockSymbol" in errors[0]
    assert "transactionNum" in errors[1]


def test_a_quote_server_event_missing_a_required_field_is_an_error(tmp_path: Path) -> None:
    event = AuditEvent(QUOTE_SERVER, 1, 0, T0, "shard-0", "alice", price=100, symbol="ABC")
    errors = validate_log(write(tmp_path / "log.xml", [event]))
    assert errors and "quoteServerTime" in " ".join(errors)


def test_a_timestamp_outside_the_schema_window_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "log.xml", [user_command(1)._replace(timestamp=5)])
    assert "timestamp" in validate_log(path)[0]


def test_a_truncated_log_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "log.xml", [user_command(i) for i in range(1, 2000)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert validate_log(path) != []


def test_a_log_without_its_closing_tag_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "log.xml", [user_command(1)])
    path.write_bytes(path.read_bytes().replace(b"</log>\n", b""))
    assert validate_log(path) != []


def test_a_file_that_is_not_xml_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "log.xml"
    path.write_text("txn,command\n1,ADD\n")
    assert validate_log(path) != []


def test_a_wrong_root_element_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "log.xml"
    path.write_text('<?xml version="1.0"?>\n<events></events>\n')
    assert validate_log(path) != []


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    errors = validate_log(tmp_path / "absent.xml")
    assert len(errors) == 1


def test_a_big_file_gets_its_first_error_from_the_streaming_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate, "FULL_REPORT_MAX_BYTES", 0)
    path = write(tmp_path / "log.xml", [user_command(1), user_command(2), user_command(3, "X")])
    errors = validate_log(path)
    assert len(errors) == 1
    assert "'X'" in errors[0] and "stopped near event" in errors[0]


def many(n: int) -> Iterator[AuditEvent]:
    for i in range(1, n + 1):
        yield user_command(i, "BUY", "ABC")


def test_a_large_valid_log_validates(tmp_path: Path) -> None:
    path = write(tmp_path / "log.xml", many(200_000))
    assert validate_log(path) == []


def test_the_error_list_is_capped(tmp_path: Path) -> None:
    path = write(tmp_path / "log.xml", [user_command(i, "NOPE") for i in range(1, 300)])
    assert len(validate_log(path, max_errors=10)) == 10
