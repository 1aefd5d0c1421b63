"""The all-users DUMPLOG when the shards' journals are on hosts of their own: the gateway pulls
every shard's journal records over its link, a chunk at a time, into files in its own dump
directory, then merges and writes the log there as a shard does (server/audit/parallel_dump.py).

Records travel as they are stored (compressed), base64 in the JSON frames; pulling one chunk at
a time per shard bounds what is in flight. File writes and the merge run on threads, never on
the reactor thread.
"""

from __future__ import annotations

import logging
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from twisted.internet import threads
from twisted.internet.defer import Deferred, DeferredList, FirstError
from twisted.python.failure import Failure

from protocol.errors import ErrorCode
from protocol.replies import Reply
from server.shards.channel import unpack_records

log = logging.getLogger("daytrade.gateway")

#: Journal records asked for at a time (a record is one group commit, ~1-20 KB compressed).
CHUNK_RECORDS = 256
_RECORD = struct.Struct("!QI")  # seq, length of the data that follows


class PulledJournal:
    """A shard's journal records as pulled into a file: what the dump reads of a journal."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.highest_txn = 0
        self.last_seq = 0

    def append(self, rows: list[tuple[int, bytes]]) -> None:
        with open(self.path, "ab") as out:
            for seq, data in rows:
                out.write(_RECORD.pack(seq, len(data)) + data)

    def max_txn(self) -> int:
        return self.highest_txn

    def records(self, after_seq: int = 0) -> Iterator[tuple[int, bytes]]:
        with open(self.path, "rb") as source:
            while header := source.read(_RECORD.size):
                seq, length = _RECORD.unpack(header)
                data = source.read(length)
                if seq > after_seq:
                    yield seq, data

    def close(self) -> None:
        pass


class RemoteDump:
    """One all-users DUMPLOG written by the gateway from every remote shard's journal."""

    def __init__(self, count: int, fetch: Callable[[int, int, int], Deferred[Any]],
                 dump_dir: Path, txn: int, filename: str,
                 answer: Callable[[list[bytes], str | None], None]) -> None:
        self._count = count
        self._fetch = fetch  # (shard, after_seq, limit) -> Deferred[(max_txn, rows)]
        self._dump_dir = dump_dir
        self._txn = txn
        self._filename = filename
        self._answer = answer
        self._work = Path(tempfile.mkdtemp(prefix=".remote-dump-", dir=dump_dir))
        self._journals = [PulledJournal(self._work / f"shard-{i}.records") for i in range(count)]

    def start(self) -> Deferred[None]:
        pulls = [self._pull(i) for i in range(self._count)]
        done = DeferredList(pulls, fireOnOneErrback=True, consumeErrors=True)
        done.addCallback(lambda _: threads.deferToThread(self._write))
        done.addCallbacks(self._written, self._failed)
        return done

    def _pull(self, index: int) -> Deferred[None]:
        journal = self._journals[index]

        def got(answer: tuple[int, list[list[Any]]]) -> Any:
            max_txn, rows = answer
            journal.highest_txn = max(journal.highest_txn, max_txn)
            if not rows:
                return None
            records = unpack_records(rows)
            journal.last_seq = records[-1][0]
            d = threads.deferToThread(journal.append, records)
            d.addCallback(lambda _: self._fetch(index, journal.last_seq, CHUNK_RECORDS))
            d.addCallback(got)
            return d

        return self._fetch(index, 0, CHUNK_RECORDS).addCallback(got)

    def _write(self) -> dict[str, Any]:
        from server.audit.parallel_dump import dump_all_users

        result = dump_all_users(self._journals, self._dump_dir, self._filename)
        reply: dict[str, Any] = {"path": str(result.path), "events": result.events}
        if result.replaced:
            reply["replaced"] = True
        return reply

    def _written(self, result: dict[str, Any]) -> None:
        self._cleanup()
        self._answer([Reply(self._txn, "DUMPLOG", True, result).to_json().encode()], None)

    def _failed(self, failure: Failure) -> None:
        self._cleanup()
        if failure.check(FirstError):  # a pull failed: its own failure says why
            failure = failure.value.subFailure
        log.error("DUMPLOG from the remote shards failed: %s", failure.getTraceback())
        code = ErrorCode.BAD_ARGUMENT if failure.check(ValueError) else ErrorCode.INTERNAL
        self._answer([Reply(self._txn, "DUMPLOG", False, None, code,
                            f"DUMPLOG failed: {failure.getErrorMessage()}").to_json().encode()],
                     code.value)

    def _cleanup(self) -> None:
        shutil.rmtree(self._work, ignore_errors=True)
