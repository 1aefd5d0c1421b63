"""`daytrade bench` against the real system: every command answered once, the DUMPLOG valid.

No assertion here is about speed; the figures only have to be present and add up.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from bench.cli import main
from bench.plan import build_plan
from bench.workload import read_workload, resolve
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e


def _run(tmp_path, *args: str) -> tuple[int, dict]:
    report = tmp_path / "report.json"
    code = main([*args, "--json", str(report), "--dump-to", str(tmp_path / "dumps"),
                 "--no-progress", "--timeout", "30"])
    return code, json.loads(report.read_text())


def _assert_every_command_answered_once(result: dict, workload: str) -> None:
    plan = build_plan(read_workload(resolve(workload)))
    assert result["planned_commands"] == result["commands"] == plan.commands
    client = result["client"]
    assert client["replies"] - client["busy_retries"] == plan.commands
    assert client["mismatched"] == client["unmatched_replies"] == client["late_replies"] == 0
    assert client["decode_errors"] == 0
    by_code = result["errors"]["by_code"]
    assert not {"client_timeout", "connection_lost", "client_error", "internal"} & set(by_code)
    assert [d["ok"] for d in result["dumplog"]] == [True] * len(plan.deferred)


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_one_user_embedded_with_validation_calibration_and_plot(tmp_path, capsys):
    plot = ["--plot", str(tmp_path / "run.png")] if _has_matplotlib() else []
    code, result = _run(tmp_path, "1user.txt", "--embedded", "--validate", "--calibrate",
                        "--quote-latency", "fixed:2", "--shards", "2", "--no-uvloop", *plot)
    assert code == 0
    _assert_every_command_answered_once(result, "1user.txt")
    assert result["validation"]["ok"]
    assert result["validation"]["cash"]["users"] == 1
    assert result["settings"]["event_loop"] == "asyncio"
    saved = result["dumplog"][0]["saved_to"]
    assert saved.startswith(str(tmp_path / "dumps"))
    assert result["validation"]["file"] == saved
    assert result["server"]["cpu_s"] >= 0 and result["server"]["peak_rss_mb"] > 0
    roles = {p["role"] for p in result["server"]["processes"]}
    assert {"gateway", "shard-0", "shard-1", "redis", "quotes"} <= roles
    assert result["quotes"]["fetches"] >= 1
    assert result["calibration"]["commands"] == result["commands"]
    assert result["calibration"]["ratio"] > 0
    assert result["warnings"] == []
    # The output ends with the summary.
    out = capsys.readouterr().out
    summary = out[out.rindex("summary: 1user.txt"):]
    assert len(summary.splitlines()) <= 15
    for what in ("commands/s", "p50", "p99", "error replies", "server CPU per command",
                 "disk writes per command", "validation"):
        assert what in summary
    assert "passed" in summary
    if plot:
        assert (tmp_path / "run.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.path.exists("/proc/self/task"),
                    reason="threads are read from /proc")
def test_cpu_per_thread_of_the_shards(tmp_path):
    code, result = _run(tmp_path, "10user.txt", "--embedded", "--quote-latency", "fixed:5",
                        "--shards", "2", "--limit", "2000")
    assert code == 0
    for process in result["server"]["processes"]:
        if not process["role"].startswith("shard-"):
            continue
        threads = {t["name"]: t for t in process["threads"]}
        # The kernel keeps 15 bytes of a name: shard-0-snapshot is shard-0-snapsho.
        names = {"main", f"{process['role']}-commit", f"{process['role']}-snapshot"[:15]}
        assert names <= set(threads)
        assert sum(t["cpu_s"] for t in threads.values()) <= process["cpu_s"] + 0.05
        assert threads["main"]["cpu_us_per_command"] is not None


def test_ten_users_embedded_with_validation_and_compare(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"commands_per_s": 1.0, "latency": {"all": {"p99_ms": 1.0}}}))
    code, result = _run(tmp_path, "10user.txt", "--embedded", "--validate", "--connections",
                        "3", "--quote-latency", "fixed:2", "--compare", str(old))
    assert code == 0
    _assert_every_command_answered_once(result, "10user.txt")
    validation = result["validation"]
    assert validation["ok"] and validation["schema_ok"]
    assert validation["cash"]["users"] == validation["cash"]["matched"] == 10
    assert validation["events"] >= result["commands"]
    assert result["dumplog"][0]["events"] == validation["events"]


def test_against_a_running_server_with_its_token(tmp_path):
    with RunningSystem(tmp_path / "data", quote_latency="fixed:2") as system:
        token = tmp_path / "data" / "operator.token"
        code, result = _run(tmp_path, "1user.txt", "--port", str(system.port),
                            "--token-file", str(token), "--validate", "--rate", "2000")
    assert code == 0
    _assert_every_command_answered_once(result, "1user.txt")
    assert result["target"]["mode"] == "server"
    assert result["validation"]["ok"]
    # The server's own file stays; the bench saved a copy.
    assert (tmp_path / "data" / "dumps" / "testLOG").exists()
    assert result["server"] is not None and any(p["role"] == "gateway"
                                                for p in result["server"]["processes"])


def test_a_wrong_token_and_a_second_run_against_the_same_server_are_explained(tmp_path,
                                                                            capsys):
    with RunningSystem(tmp_path / "data", quote_latency="fixed:2") as system:
        wrong = tmp_path / "wrong.token"
        wrong.write_text("not-the-token")
        assert main(["1user.txt", "--port", str(system.port), "--token-file", str(wrong),
                     "--no-progress"]) == 1
        out = " ".join(capsys.readouterr().out.split())
        assert f"the server at 127.0.0.1:{system.port} refused the operator token in {wrong}" \
               in out and "pass --token-file" in out
        token = str(tmp_path / "data" / "operator.token")
        first_code, first = _run(tmp_path, "1user.txt", "--port", str(system.port),
                                 "--token-file", token)
        capsys.readouterr()
        code, second = _run(tmp_path, "1user.txt", "--port", str(system.port),
                            "--token-file", token)
    assert first_code == 0 and first["warnings"] == []
    assert code == 0  # every command was answered: a warning, not a failure
    assert [w["code"] for w in second["warnings"]] == ["stale_txn"]
    assert second["warnings"][0]["count"] == second["errors"]["by_code"]["stale_txn"]
    out = " ".join(capsys.readouterr().out.split())
    assert out.count("WARNING") == 2  # under the headline and again in the summary
    assert "already seen these txns" in out and "--embedded" in out
    assert "(replaced the file there)" in out  # the first run's DUMPLOG file
