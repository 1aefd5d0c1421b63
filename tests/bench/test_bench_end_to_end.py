"""`daytrade bench` against the real system: every command answered once, the DUMPLOG valid.

No assertion here is about speed; the figures only have to be present and add up.
"""

from __future__ import annotations

import json

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


def test_one_user_embedded_with_validation_calibration_and_plot(tmp_path):
    code, result = _run(tmp_path, "1user.txt", "--embedded", "--validate", "--calibrate",
                        "--quote-latency", "fixed:2", "--shards", "2", "--no-uvloop",
                        "--plot", str(tmp_path / "run.png"))
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
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "run.png").read_bytes()[:4] == b"\x89PNG"


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
