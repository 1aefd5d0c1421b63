"""DUMPLOG output: a safe file name inside the dump directory, an atomic write, or a bounded string.

The client names the file, so the name is reduced to a plain base name; the file is written beside
its target under a temporary name and renamed over it, which replaces whatever was there (a symlink
included) without ever writing through it.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, NamedTuple

from server.audit.xml_writer import write_log
from server.shards.audit_events import AuditEvent

DEFAULT_NAME = "dumplog.xml"
MAX_NAME_LENGTH = 128
#: `DUMPLOG,<user>,-` answers in the reply itself, up to this many bytes of XML.
RENDER_LIMIT_BYTES = 4 * 1024 * 1024

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
TEMP_PREFIX = ".dumplog-"  # safe names never start with a dot, so a temp never shadows a target


def remove_leftover_temps(dump_dir: Path) -> list[str]:
    """Remove the temporary files and work directories of DUMPLOGs that a kill cut short (only
    while no DUMPLOG can be running: at start). Returns their names."""
    removed = []
    for entry in dump_dir.glob(f"{TEMP_PREFIX}*"):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry.name)
    return removed


class DumpResult(NamedTuple):
    """Where a dump went, how many events it holds, and whether it replaced a file of that name
    (different requested names can reduce to one safe name: the reply must say so)."""

    path: Path
    events: int
    replaced: bool = False


class DumpTooLarge(Exception):
    """The XML for an in-reply dump exceeds its byte limit."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"the log is larger than {limit_bytes} bytes; dump it to a file")
        self.limit_bytes = limit_bytes


def safe_name(requested: str) -> str:
    """`requested` reduced to a base name of `[A-Za-z0-9._-]`, never hidden, `.` or `..`."""
    base = requested.replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).lstrip(".-")
    if len(base) > MAX_NAME_LENGTH:
        stem, dot, ext = base.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            base = stem[: MAX_NAME_LENGTH - len(ext) - 1] + "." + ext
        else:
            base = base[:MAX_NAME_LENGTH]
    if not base.strip("._-"):
        return DEFAULT_NAME
    return base


def safe_dump_path(dump_dir: Path, requested: str) -> Path:
    """The path DUMPLOG writes for `requested`: always directly inside `dump_dir`."""
    return Path(dump_dir) / safe_name(requested)


def dump_events(events: Iterable[AuditEvent], dump_dir: Path, requested: str) -> DumpResult:
    """Write `events` as XML to the safe path for `requested`, replacing any file there atomically.

    The data is fsynced before the rename and the directory after it, so after a crash the target
    holds either the old file or the complete new one. The file is private to the server (0600).
    """
    dump_dir = Path(dump_dir)
    dump_dir.mkdir(parents=True, exist_ok=True)
    target = safe_dump_path(dump_dir, requested)
    replacement = ReplacingFile(target)
    with replacement as out:
        count = write_log(events, out)
    return DumpResult(target, count, replacement.replaced)


class ReplacingFile:
    """A new file beside `target` that replaces it atomically once the `with` block succeeds:
    its data fsynced before the rename, the directory after it; removed if the block fails.
    `replaced` then says whether a file (or a planted symlink) was there."""

    def __init__(self, target: Path, buffering: int = 1 << 20) -> None:
        self.target = target
        self.replaced = False
        self._buffering = buffering
        self._tmp_name = ""
        self._out: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        # mkstemp opens with O_CREAT|O_EXCL: a name planted in the directory is never opened.
        fd, self._tmp_name = tempfile.mkstemp(dir=self.target.parent, prefix=TEMP_PREFIX,
                                              suffix=".tmp")
        self._out = os.fdopen(fd, "wb", buffering=self._buffering)
        return self._out

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        out = self._out
        assert out is not None
        try:
            if exc_type is None:
                out.flush()
                os.fsync(out.fileno())
            out.close()
            if exc_type is None:
                # lexists: a planted symlink (even a dangling one) counts as a file that was there
                self.replaced = os.path.lexists(self.target)
                # rename(2) replaces a symlink at `target` itself rather than following it.
                os.replace(self._tmp_name, self.target)
        except BaseException:
            _unlink(self._tmp_name)
            raise
        if exc_type is not None:
            _unlink(self._tmp_name)
            return
        _fsync_dir(self.target.parent)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _BoundedBuffer(io.RawIOBase):
    """An in-memory sink that refuses to grow past `limit` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._size += len(data)
        if self._size > self._limit:
            raise DumpTooLarge(self._limit)
        self._parts.append(bytes(data))
        return len(data)

    def text(self) -> str:
        return b"".join(self._parts).decode("utf-8")


def render_events(events: Iterable[AuditEvent], limit_bytes: int = RENDER_LIMIT_BYTES) -> str:
    """The XML document for `events` as a string; DumpTooLarge once it passes `limit_bytes`."""
    sink = _BoundedBuffer(limit_bytes)
    write_log(events, sink)  # type: ignore[arg-type]
    return sink.text()
