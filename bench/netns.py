"""Separate hosts on one machine: Linux network namespaces on a private bridge.

A `Network` is a switch namespace holding a bridge, and one namespace per host, each joined to
the bridge by a veth pair made inside the namespaces (nothing is added to the machine's own
namespace). Hosts get 10.213.0.0/24 addresses that exist only in there, with no route out, so
all traffic stays between the hosts. `close` ends every process a host ran and deletes every
namespace, which takes their links with them.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

SUBNET = "10.213.0"
PREFIX = "dt"  # namespaces are named dt-<pid of the test process>-<host>
_CLONE_NEWNET = 0x40000000
_NAME = re.compile(rf"{PREFIX}-(\d+)-\S+")
T = TypeVar("T")


class NamespacesUnavailable(Exception):
    """Network namespaces cannot be made here (not root, no `ip`, no kernel support)."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, ["ip", *args], result.stdout,
                                            result.stderr)


def existing_namespaces() -> list[str]:
    result = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def _delete_namespace(name: str) -> None:
    """End every process still in `name`, then delete it (with the links inside it)."""
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                          timeout=30).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)


def remove_leftovers() -> None:
    """Delete the namespaces of earlier test processes that died without cleaning up."""
    for name in existing_namespaces():
        m = _NAME.fullmatch(name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            _delete_namespace(name)


def check_available() -> None:
    """Raise NamespacesUnavailable with the reason unless a namespace can be made here."""
    if os.geteuid() != 0:
        raise NamespacesUnavailable("network namespaces need root")
    name = f"{PREFIX}-{os.getpid()}-probe"
    try:
        _ip("netns", "add", name)
        _ip("-n", name, "link", "add", "probe0", "type", "bridge")
    except FileNotFoundError:
        raise NamespacesUnavailable("the `ip` command (iproute2) is not installed") from None
    except subprocess.CalledProcessError as exc:
        raise NamespacesUnavailable(f"`{' '.join(exc.cmd)}` failed: {exc.stderr.strip()}") \
            from None
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)


class Host:
    """One host: a network namespace with one interface, eth0, on the network's bridge."""

    def __init__(self, network: Network, name: str, number: int) -> None:
        self.network = network
        self.name = name
        self.namespace = f"{network.tag}-{name}"
        self.address = f"{SUBNET}.{number}"
        self.switch_port = f"p{number}"  # the veth end on the bridge, in the switch namespace

    def popen(self, args: list[str], **kwargs: Any) -> subprocess.Popen:
        """`args` run in this host's namespace, in a process group of their own."""
        process = subprocess.Popen(["ip", "netns", "exec", self.namespace, *args],
                                   start_new_session=True, **kwargs)
        self.network.processes.append(process)
        return process

    def run(self, function: Callable[[], T], timeout: float = 120.0) -> T:
        """`function()` on a thread inside this host's namespace (sockets it opens are this
        host's), waiting at most `timeout` seconds."""
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                _enter_namespace(self.namespace)
                outcome["value"] = function()
            except BaseException as exc:  # noqa: BLE001 (re-raised on the caller's thread)
                outcome["error"] = exc

        thread = threading.Thread(target=target, name=f"in-{self.name}", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"{function} did not finish within {timeout} s on {self.name}")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def delay(self, ms: float) -> str | None:
        """Delay every packet this host sends by `ms` (tc netem); None when done, else why the
        kernel cannot (not every kernel has netem)."""
        result = subprocess.run(["ip", "netns", "exec", self.namespace, "tc", "qdisc", "add",
                                 "dev", "eth0", "root", "netem", "delay", f"{ms}ms"],
                                capture_output=True, text=True, timeout=30)
        return None if result.returncode == 0 else result.stderr.strip() or "tc failed"

    def set_link(self, up: bool) -> None:
        """Plug this host's cable into the bridge or pull it (`ip link set ... up/down`)."""
        _ip("-n", self.network.switch, "link", "set", self.switch_port, "up" if up else "down")


class Network:
    """A bridge in a switch namespace of its own and the hosts on it; `close` removes it all."""

    def __init__(self) -> None:
        self.tag = f"{PREFIX}-{os.getpid()}"
        self.switch = f"{self.tag}-switch"
        self.hosts: dict[str, Host] = {}
        self.processes: list[subprocess.Popen] = []
        self._namespaces: list[str] = []
        self._add_namespace(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def _add_namespace(self, name: str) -> None:
        if name in existing_namespaces():  # left by this very pid's earlier Network
            _delete_namespace(name)
        _ip("netns", "add", name)
        self._namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def add_host(self, name: str) -> Host:
        """A new host namespace with eth0 at 10.213.0.<10 + n>/24 on the bridge."""
        host = Host(self, name, 10 + len(self.hosts))
        self._plug(host)
        self.hosts[name] = host
        return host

    def _plug(self, host: Host, mac: str | None = None) -> None:
        self._add_namespace(host.namespace)
        _ip("-n", self.switch, "link", "add", host.switch_port, "type", "veth", "peer", "name",
            "eth0", *(["address", mac] if mac else []), "netns", host.namespace)
        _ip("-n", self.switch, "link", "set", host.switch_port, "master", "br0")
        _ip("-n", self.switch, "link", "set", host.switch_port, "up")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")

    def replace_host(self, name: str, new_name: str) -> Host:
        """Host `name` dies (its processes are killed, its namespace and link deleted) and a new
        host, `new_name`, takes its address, as a rescheduled pod takes its stable name.

        The new host's eth0 gets the dead one's MAC address too: the other hosts' ARP caches
        would otherwise send to the dead MAC for up to a minute (a real takeover announces
        itself with a gratuitous ARP; a pod's new IP comes with a new DNS answer)."""
        old = self.hosts.pop(name)
        mac = json.loads(subprocess.run(
            ["ip", "-j", "-n", old.namespace, "link", "show", "eth0"], capture_output=True,
            text=True, timeout=30, check=True).stdout)[0]["address"]
        # The veth pair goes first, at once: a deleted namespace's links are freed later, by
        # the kernel, and the new host's link needs the old one's name on the bridge.
        _ip("-n", self.switch, "link", "del", old.switch_port)
        _delete_namespace(old.namespace)
        self._namespaces.remove(old.namespace)
        number = int(old.address.rsplit(".", 1)[1])
        host = Host(self, new_name, number)
        self._plug(host, mac)
        self.hosts[new_name] = host
        return host

    def close(self) -> None:
        """End every process started on a host (its whole group), then delete the namespaces."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            if process.poll() is None:
                process.wait(10)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        for name in reversed(self._namespaces):
            _delete_namespace(name)
        self._namespaces.clear()


def _enter_namespace(namespace: str) -> None:
    """Move the calling thread (only it: the network namespace is per thread) into `namespace`."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {namespace}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def wait_for_line(process: subprocess.Popen, pattern: str, timeout: float) -> re.Match[str]:
    """The first line `process` prints on its stdout pipe (bytes) that matches `pattern`;
    raises if it exits or `timeout` seconds pass first. Reads the pipe unbuffered, so no line
    waits in a buffer that select() cannot see."""
    wanted = re.compile(pattern)
    deadline = time.monotonic() + timeout
    fd = process.stdout.fileno()
    pending = b""
    seen: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"{process.args} exited ({process.wait(10)}) before printing "
                                   f"{pattern!r}; it printed {seen[-5:]}")
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                seen.append(line.decode(errors="replace"))
                m = wanted.search(seen[-1])
                if m:
                    return m
    raise TimeoutError(f"{process.args} did not print {pattern!r} within {timeout} s; "
                       f"it printed {seen[-5:]}")
