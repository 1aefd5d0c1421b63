"""DUMPLOG files: a safe name inside the dump directory, written atomically; or a bounded string."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.audit.dumpfile import (
    DEFAULT_NAME,
    MAX_NAME_LENGTH,
    DumpResult,
    DumpTooLarge,
    dump_events,
    remove_leftover_temps,
    render_events,
    safe_dump_path,
    safe_name,
)
from server.audit.validate import validate_log
from server.shards.audit_events import ACCOUNT_TRANSACTION, USER_COMMAND, AuditEvent

T0 = 1167631200000
SAFE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def events(n: int) -> Iterator[AuditEvent]:
    for i in range(n):
        yield AuditEvent(USER_COMMAND, i + 1, 0, T0, "gateway", "alice", "ADD", funds=100 * i)
        yield AuditEvent(ACCOUNT_TRANSACTION, i + 1, 1, T0, "shard-0", "alice", action="add",
                         funds=100 * i)


HOSTILE_NAMES = [
    "../../etc/passwd", "/etc/passwd", "a\x00b", "..", ".", "", "x" * 5000,
    "dir/sub/name.xml", "résumé 漢字.xml", "..\\..\\windows\\win.ini", "./.hidden", "...",
    "name/", "-rf", "a\nb\r.xml", "~/log.xml", "$(rm -rf).xml", "con:log", "\x7f\x1b[2J",
    "a" * 200 + ".xml",
]


@pytest.mark.parametrize("requested", HOSTILE_NAMES, ids=repr)
def test_hostile_names_always_stay_inside_the_dump_dir(tmp_path: Path, requested: str) -> None:
    path = safe_dump_path(tmp_path, requested)
    assert path.parent == tmp_path
    assert path.resolve().parent == tmp_path.resolve()
    assert SAFE.fullmatch(path.name), path.name
    assert path.name not in (".", "..")
    assert len(path.name) <= MAX_NAME_LENGTH


@pytest.mark.parametrize(("requested", "name"), [
    ("dumplog.xml", "dumplog.xml"),
    ("dir/sub/name.xml", "name.xml"),
    ("../../etc/passwd", "passwd"),
    ("/etc/passwd", "passwd"),
    ("..\\..\\windows\\win.ini", "win.ini"),
    ("a\x00b", "a_b"),
    ("my log.xml", "my_log.xml"),
    ("résumé.xml", "r_sum_.xml"),
    ("./.hidden", "hidden"),
    ("..", DEFAULT_NAME),
    (".", DEFAULT_NAME),
    ("", DEFAULT_NAME),
    ("name/", DEFAULT_NAME),
    ("___", DEFAULT_NAME),
])
def test_names_are_reduced_to_a_plain_base_name(requested: str, name: str) -> None:
    assert safe_name(requested) == name


def test_an_over_long_name_is_cut_but_keeps_its_extension() -> None:
    name = safe_name("a" * 5000 + ".xml")
    assert len(name) == MAX_NAME_LENGTH
    assert name.endswith(".xml")


def test_dump_writes_a_valid_log_and_reports_it(tmp_path: Path) -> None:
    result = dump_events(events(10), tmp_path, "out.xml")
    assert result == DumpResult(tmp_path / "out.xml", 20)
    assert validate_log(result.path) == []


def test_dump_creates_a_missing_dump_dir(tmp_path: Path) -> None:
    result = dump_events(events(1), tmp_path / "dumps" / "deep", "x.xml")
    assert result.path.is_file()


def test_dump_replaces_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "out.xml").write_text("old contents")
    result = dump_events(events(3), tmp_path, "out.xml")
    assert result.path.read_bytes().startswith(b'<?xml version="1.0"?>')
    assert validate_log(result.path) == []


def test_dump_says_when_it_replaced_a_file(tmp_path: Path) -> None:
    assert dump_events(events(1), tmp_path, "a/out.xml").replaced is False
    # another requested name that reduces to the same safe name
    second = dump_events(events(1), tmp_path, "b/out.xml")
    assert second.replaced is True and second.path == tmp_path / "out.xml"


def test_dump_of_a_hostile_name_lands_inside_the_dump_dir(tmp_path: Path) -> None:
    dump_dir = tmp_path / "dumps"
    result = dump_events(events(1), dump_dir, "../../escape.xml")
    assert result.path == dump_dir / "escape.xml"
    assert not (tmp_path / "escape.xml").exists()


def test_a_planted_symlink_is_replaced_not_written_through(tmp_path: Path) -> None:
    dump_dir = tmp_path / "dumps"
    dump_dir.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (dump_dir / "out.xml").symlink_to(victim)
    result = dump_events(events(2), dump_dir, "out.xml")
    assert victim.read_text() == "precious"
    assert not result.path.is_symlink()
    assert validate_log(result.path) == []


def test_a_dangling_symlink_is_replaced_and_its_target_never_created(tmp_path: Path) -> None:
    dump_dir = tmp_path / "dumps"
    dump_dir.mkdir()
    (dump_dir / "out.xml").symlink_to(tmp_path / "created-by-attacker")
    dump_events(events(1), dump_dir, "out.xml")
    assert not (tmp_path / "created-by-attacker").exists()
    assert (dump_dir / "out.xml").is_file()


def test_an_atomic_replace_leaves_no_temporary_files(tmp_path: Path) -> None:
    for _ in range(3):
        dump_events(events(5), tmp_path, "out.xml")
    assert os.listdir(tmp_path) == ["out.xml"]


def test_a_failed_dump_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    (tmp_path / "out.xml").write_text("previous dump")

    def failing() -> Iterator[AuditEvent]:
        yield from events(1000)
        raise RuntimeError("store went away")

    with pytest.raises(RuntimeError):
        dump_events(failing(), tmp_path, "out.xml")
    assert (tmp_path / "out.xml").read_text() == "previous dump"
    assert os.listdir(tmp_path) == ["out.xml"]


def test_render_events_returns_the_same_document_as_a_file_dump(tmp_path: Path) -> None:
    text = render_events(events(4))
    result = dump_events(events(4), tmp_path, "same.xml")
    assert text == result.path.read_text(encoding="utf-8")


def test_render_events_refuses_a_log_past_its_limit() -> None:
    size = len(render_events(events(50)).encode())
    assert len(render_events(events(50), limit_bytes=size)) == size
    with pytest.raises(DumpTooLarge) as info:
        render_events(events(50), limit_bytes=size - 1)
    assert info.value.limit_bytes == size - 1


def test_render_events_stops_early_instead_of_building_a_huge_string() -> None:
    consumed = 0

    def counted() -> Iterator[AuditEvent]:
        nonlocal consumed
        for event in events(1_000_000):
            consumed += 1
            yield event

    with pytest.raises(DumpTooLarge):
        render_events(counted(), limit_bytes=64 * 1024)
    assert consumed < 10_000


def test_the_default_limit_is_four_megabytes() -> None:
    with pytest.raises(DumpTooLarge) as info:
        render_events(events(20_000))
    assert info.value.limit_bytes == 4 * 1024 * 1024


def test_leftovers_of_a_cut_short_dumplog_are_removed_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / ".dumplog-abc.tmp").write_text("<log>")
    work = tmp_path / ".dumplog-def.work"
    work.mkdir()
    (work / "b000.s0").write_bytes(b"x")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "keep").write_text("mine")
    (tmp_path / ".dumplog-link.work").symlink_to(outside)
    (tmp_path / "finalLOG.xml").write_text("<log/>")
    removed = remove_leftover_temps(tmp_path)
    assert sorted(removed) == [".dumplog-abc.tmp", ".dumplog-def.work", ".dumplog-link.work"]
    assert [p.name for p in tmp_path.iterdir()] == ["finalLOG.xml"]
    assert (outside / "keep").read_text() == "mine"  # a link is removed, never followed
