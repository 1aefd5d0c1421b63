"""`daytrade up` on a data directory: its partition count is fixed, and data of the layout
before the journal is refused with what to do."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from server.store.sqlite_journal import SqliteDirectory


def up(data_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daytrade", "up", "--port", "0",
                           "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=60)


def test_a_shard_count_other_than_the_data_was_made_with_is_refused_naming_both(tmp_path):
    directory = SqliteDirectory(tmp_path)
    directory.claim_partitions(2)
    directory.close()
    result = up(tmp_path, "--shards", "3")
    assert result.returncode == 2
    assert "made with 2 shards, not 3" in result.stderr and "--shards 2" in result.stderr


def test_zero_shards_is_refused_before_anything_starts(tmp_path):
    result = up(tmp_path / "new", "--shards", "0")
    assert result.returncode == 2 and "--shards" in result.stderr
    assert not (tmp_path / "new").exists()


def test_data_written_before_the_journal_is_refused_and_left_untouched(tmp_path):
    old = tmp_path / "daytrade.sqlite"
    with sqlite3.connect(old) as conn:
        conn.execute("CREATE TABLE accounts (user TEXT PRIMARY KEY, version INTEGER, doc TEXT)")
        conn.execute("INSERT INTO accounts VALUES ('alice', 3, '{}')")
    before = old.read_bytes()
    result = up(tmp_path)
    assert result.returncode == 2
    assert "before the journal" in result.stderr and "new --data-dir" in result.stderr
    assert old.read_bytes() == before
    assert not list(tmp_path.glob("shard-*"))
