"""`daytrade up`, `daytrade quotes` and `daytrade` as a newcomer meets them: one-line errors for
bad flags and a taken port (with nothing left running), help with defaults, a version, Ctrl-C,
and an operator token that survives a restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.certs import self_signed_certificate
from tests.support.procs import SESSION, live_processes
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e


def daytrade(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daytrade", *args], capture_output=True,
                          text=True, timeout=timeout)


def processes_in_session(sid: int) -> list[int]:
    return live_processes(SESSION, sid)


def up_in_its_own_session(*args: str) -> tuple[subprocess.CompletedProcess, list[int]]:
    """Run `daytrade up ARGS` to its end; its result and what of its session still runs."""
    process = subprocess.Popen([sys.executable, "-m", "daytrade", "up", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=60)
    finally:
        left = processes_in_session(process.pid)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), left


@pytest.fixture
def taken_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield holder.getsockname()[1]


def test_a_port_in_use_is_one_line_a_failure_and_leaves_nothing_running(tmp_path, taken_port):
    result, left = up_in_its_own_session("--port", str(taken_port), "--data-dir",
                                         str(tmp_path / "data"))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"daytrade up: cannot listen on 127.0.0.1:{taken_port}: Address already in use"]
    assert left == []


def test_a_tls_port_in_use_is_one_line_a_failure_and_leaves_nothing_running(tmp_path,
                                                                              taken_port):
    cert, key = self_signed_certificate(tmp_path)
    # the plain port is free, so simulator, Redis and store are up when the TLS port fails
    result, left = up_in_its_own_session("--port", "0", "--data-dir", str(tmp_path / "data"),
                                         "--tls-cert", str(cert), "--tls-key", str(key),
                                         "--tls-port", str(taken_port))
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert f":{taken_port}: " in result.stderr and "cannot listen" in result.stderr
    assert left == []


@pytest.mark.parametrize(("flags", "says"), [
    (["--port", "70000"], "argument --port: a port is 0 to 65535, not 70000"),
    (["--port", "http"], "argument --port: a port is a whole number"),
    (["--tls-port", "-1"], "argument --tls-port: a port is 0 to 65535"),
    (["--quote-timeout", "0"], "argument --quote-timeout: must be greater than 0"),
    (["--quote-timeout", "nan"], "argument --quote-timeout: must be at least 0"),
    (["--sweep-interval", "0"], "argument --sweep-interval: must be at least 0.05"),
    (["--snapshot-interval", "-1"], "argument --snapshot-interval: must be at least 0.05"),
    (["--idle-timeout", "-5"], "argument --idle-timeout: must be at least 0"),
    (["--max-in-flight", "0"], "argument --max-in-flight: must be at least 1"),
    (["--rate-limit", "-1"], "argument --rate-limit: must be at least 0"),
    (["--rate-burst", "0"], "argument --rate-burst: must be at least 1"),
    (["--quote-max-requests", "0"], "argument --quote-max-requests: must be at least 1"),
    (["--quote-hedge-budget", "0.5"], "argument --quote-hedge-budget: must be at least 1"),
    (["--quote-hedge-after", "-1"], "argument --quote-hedge-after: must be at least 0"),
    (["--quote-seed", "-1"], "argument --quote-seed: must be at least 0"),
    (["--quote-latency", "fast"], "argument --quote-latency: latency must be fixed:<ms>"),
    (["--quote-server", "localhost"], "argument --quote-server: must be HOST:PORT"),
    (["--quote-server", "localhost:0"], "argument --quote-server: must be HOST:PORT"),
    (["--redis-url", "localhost:6379"], "argument --redis-url: must be a URL redis://"),
    (["--mongo-url", "localhost"], "argument --mongo-url: must be a URL mongodb://"),
    (["--log-level", "LOUD"], "argument --log-level: invalid choice"),
    (["--tls-cert", "/no/such.pem", "--tls-key", "/no/such.key"],
     "argument --tls-cert: no such file"),
    (["--tls-port", "4443"], "--tls-port needs --tls-cert and --tls-key"),
    (["--no-redis", "--redis-url", "redis://127.0.0.1:1"],
     "--no-redis and --redis-url exclude each other"),
    (["--quote-renew-ahead", "-1"], "argument --quote-renew-ahead: must be at least 0"),
    (["--quote-renew-ahead", "4", "--quote-timeout", "5"],
     "--quote-renew-ahead must be 0 or more than --quote-timeout"),
])
def test_a_bad_up_flag_is_one_line_and_starts_nothing(tmp_path, flags, says):
    result = daytrade("up", "--data-dir", str(tmp_path / "data"), *flags)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"daytrade up: {says}"), result.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(("flags", "says"), [
    (["--port", "65536"], "argument --port: a port is 0 to 65535"),
    (["--latency", "fixed:"], "argument --latency: latency must be fixed:<ms> or legacy"),
    (["--seed", "x"], "argument --seed: must be a whole number"),
    (["--backlog", "0"], "argument --backlog: must be at least 1"),
])
def test_a_bad_quotes_flag_is_one_line(flags, says):
    result = daytrade("quotes", *flags)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"daytrade quotes: {says}"), result.stderr


def test_daytrade_help_describes_the_system_and_its_commands():
    out = daytrade("--help").stdout
    assert "a day-trading system" in out and "daytrade up" in out and "--version" in out


def test_daytrade_version_prints_the_version():
    result = daytrade("--version")
    assert result.returncode == 0 and result.stdout.startswith("daytrade ")


@pytest.mark.parametrize("command", ["up", "quotes"])
def test_help_shows_defaults(command):
    out = " ".join(daytrade(command, "--help").stdout.split())
    assert "(default: 4000)" in out if command == "up" else "(default: 4444)" in out
    assert "(default: None)" not in out


def test_ctrl_c_prints_one_line_naming_the_data_dir(tmp_path):
    system = RunningSystem(tmp_path / "data").start()
    try:
        system.process.send_signal(signal.SIGINT)
        assert system.process.wait(30) == 0
        rest = system.process.stdout.read()
    finally:
        system.stop()
    assert rest.strip().splitlines()[-1] == f"stopped; data in {system.data_dir.resolve()}"


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
def test_ctrl_c_at_any_moment_of_start_up_ends_the_process(tmp_path, delay):
    # Start-up takes about a second: these land before, during and after the shards start.
    process = subprocess.Popen([sys.executable, "-m", "daytrade", "up", "--port", "0",
                                "--data-dir", str(tmp_path / "data")], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        code = process.wait(30)
        out = process.stdout.read()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stdout.close()
    # -SIGINT: still importing, Python's own Ctrl-C exit; otherwise the line says where data is.
    assert code == -signal.SIGINT or (
        code in (0, 130) and out.strip().splitlines()[-1].startswith("stopped; data in "))
    assert processes_in_session(process.pid) == []


def test_the_operator_token_is_kept_across_restarts_of_the_same_data_dir(tmp_path):
    with RunningSystem(tmp_path / "data") as first:
        token = first.token
    with RunningSystem(tmp_path / "data") as second:
        assert second.token == token


def test_an_operator_token_file_others_could_read_is_replaced(tmp_path):
    with RunningSystem(tmp_path / "data") as first:
        token = first.token
    (tmp_path / "data" / "operator.token").chmod(0o644)
    with RunningSystem(tmp_path / "data") as second:
        assert second.token != token
        assert (tmp_path / "data" / "operator.token").stat().st_mode & 0o777 == 0o600


def _children_of(pid: int) -> dict[int, str]:
    """Live child processes of `pid`, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z":
            found[int(entry.name)] = cmdline
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_redis_and_the_quote_simulator_end_when_up_is_sigkilled(tmp_path):
    system = RunningSystem(tmp_path / "data").start()
    try:
        children = _children_of(system.process.pid)
        helpers = [pid for pid, cmd in children.items()
                   if "redis-server" in cmd or "daytrade quotes" in cmd]
        assert len(helpers) == 2, children
        os.kill(system.process.pid, signal.SIGKILL)  # up alone, which runs no clean-up
        system.process.wait(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() and
                                                  _state(p) != "Z" for p in helpers):
            time.sleep(0.05)
        assert [p for p in helpers if Path(f"/proc/{p}").exists() and _state(p) != "Z"] == []
    finally:
        system.stop()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_up_removes_what_a_cut_short_dumplog_left_in_the_dump_dir(tmp_path):
    dumps = tmp_path / "data" / "dumps"
    dumps.mkdir(parents=True)
    (dumps / ".dumplog-x1.tmp").write_text("<log>")
    (dumps / ".dumplog-x2.work").mkdir()
    (dumps / "mine.xml").write_text("<log/>")
    with RunningSystem(tmp_path / "data"):
        assert sorted(p.name for p in dumps.iterdir()) == ["mine.xml"]
