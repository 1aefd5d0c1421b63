"""The gateway's side of the shards: spawn, route batches, track what is in flight, restart.

A shard that dies (its socket closes) has every command it had in flight answered `internal`
(outcome unknown: the client retries with the same txn and the restarted shard, recovered from the
journal, replays or applies it once). Commands for a shard that is restarting wait in its outbox.
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import Factory

from protocol.errors import ErrorCode
from protocol.replies import Reply
from server.shards.channel import FrameProtocol
from server.shards.worker import ShardConfig, run_shard

log = logging.getLogger("daytrade.gateway")

#: (answers, code) -> None: how answers reach whoever asked. `answers` are reply lines (UTF-8
#: JSON without the newline; STATS: the stats dicts), in request order, several at once when one
#: frame answers several requests of the same sink. `code` is set only when the pool itself
#: answers for a shard that died (the lines are then `internal` errors).
ReplySink = Callable[[list[Any], str | None], None]


class _Shard:
    """One shard's process, channel and in-flight requests."""

    def __init__(self, config: ShardConfig) -> None:
        self.config = config
        self.process: Any = None
        self.channel: FrameProtocol | None = None
        self.connected = False
        self.inflight: dict[int, tuple[ReplySink, int | None, str]] = {}
        self.waiting: list[tuple[Any, ...]] = []  # messages queued while (re)starting
        self.restarts = 0
        self.started_at = 0.0
        self.generation = 0


class ShardPool:
    """All shard workers of one gateway."""

    def __init__(self, configs: list[ShardConfig], reactor: Any, *,
                 on_event: Callable[[str, str], None], reserve_txns: Callable[[int], int],
                 queue_limit: int = 50_000) -> None:
        self._reactor = reactor
        self._shards = [_Shard(cfg) for cfg in configs]
        self._on_event = on_event
        self.reserve_txns = reserve_txns
        self._req_ids = 0
        self.queue_limit = queue_limit
        self._stopping = False
        self._ctx = multiprocessing.get_context("spawn")
        self._ready: list[Deferred[None]] = []
        self.recoveries: list[float] = []

    @property
    def count(self) -> int:
        return len(self._shards)

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        for index in range(len(self._shards)):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        shard = self._shards[index]
        shard.generation += 1
        generation = shard.generation
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        process = self._ctx.Process(target=run_shard, args=(shard.config, theirs),
                                    name=f"daytrade-shard-{index}", daemon=True)
        process.start()
        theirs.close()
        shard.process = process
        shard.started_at = time.monotonic()

        channel = FrameProtocol(lambda batch: self._on_batch(index, batch),
                                lambda reason: self._lost(index, generation),
                                self._reactor.callLater)
        shard.channel = channel
        self._reactor.adoptStreamConnection(ours.fileno(), socket.AF_UNIX,
                                            Factory.forProtocol(lambda: channel))
        ours.close()
        shard.connected = True
        waiting, shard.waiting = shard.waiting, []
        for message in waiting:
            channel.send(message)

    def stop(self, timeout: float = 5.0) -> Deferred[None]:
        """Close every shard's channel; the workers exit on EOF. Fires once all have exited
        (stragglers are killed after `timeout`). Never blocks the reactor: closing a socket
        happens in a later reactor turn."""
        self._stopping = True
        for shard in self._shards:
            if shard.channel is not None and shard.channel.transport is not None:
                shard.channel.flush()
                shard.channel.transport.loseConnection()
        done: Deferred[None] = Deferred()
        deadline = time.monotonic() + timeout

        def check() -> None:
            alive = [s.process for s in self._shards
                     if s.process is not None and s.process.is_alive()]
            if alive and time.monotonic() < deadline:
                self._reactor.callLater(0.02, check)
                return
            for process in alive:
                process.kill()
            for shard in self._shards:
                if shard.process is not None:
                    shard.process.join(1)
            done.callback(None)

        self._reactor.callLater(0, check)
        return done

    def pids(self) -> list[int | None]:
        return [s.process.pid if s.process is not None else None for s in self._shards]

    def kill(self, index: int, sig: int = 9) -> None:
        """Send a signal to a shard process (tests and the reliability battery)."""
        import os

        pid = self._shards[index].process.pid
        os.kill(pid, sig)

    # --- requests -----------------------------------------------------------------------------

    def depth(self, index: int) -> int:
        shard = self._shards[index]
        return len(shard.inflight)

    def submit(self, index: int, kind: str, payload: tuple[Any, ...], sink: ReplySink,
               txn: int | None, cmd: str) -> bool:
        """Send one request; False (nothing sent) when the shard's queue is full: reply `busy`."""
        shard = self._shards[index]
        if len(shard.inflight) >= self.queue_limit:
            return False
        self._req_ids += 1
        req_id = self._req_ids
        shard.inflight[req_id] = (sink, txn, cmd)
        self._send(index, (kind, req_id, *payload))
        return True

    def _send(self, index: int, message: tuple[Any, ...]) -> None:
        shard = self._shards[index]
        if shard.connected and shard.channel is not None:
            shard.channel.send(message)
        else:
            shard.waiting.append(message)

    def _on_batch(self, index: int, batch: list[tuple[Any, ...]]) -> None:
        inflight = self._shards[index].inflight
        on_event = self._on_event
        pop = inflight.pop
        for msg in batch:
            kind = msg[0]
            if kind == "R":
                # Each sink gets all of its lines at once: one write per client connection.
                groups: dict[ReplySink, list[bytes]] = {}
                for req_id, line in zip(msg[1], msg[2].split(b"\n")):
                    entry = pop(req_id, None)
                    if entry is not None:
                        lines = groups.get(entry[0])
                        if lines is None:
                            groups[entry[0]] = [line]
                        else:
                            lines.append(line)
                for sink, lines in groups.items():
                    sink(lines, None)
            elif kind == "E":
                on_event(msg[1], msg[2])
            elif kind == "T":  # txns for a shard's trigger firings, on the same ordered channel
                self._send(index, ("T", msg[1], self.reserve_txns(msg[2])))
            elif kind == "S":
                entry = pop(msg[1], None)
                if entry is not None:
                    entry[0]([msg[2]], None)

    def stats(self) -> Deferred[list[dict[str, Any]]]:
        """Every shard's STATS (a shard that does not answer within 2 s reports itself down)."""
        ds = []
        for index in range(len(self._shards)):
            d: Deferred[dict[str, Any]] = Deferred()

            def sink(answers: list[Any], code: str | None, d: Deferred = d,
                     i: int = index) -> None:
                if not d.called:  # an error reply (code set) means the shard died meanwhile
                    d.callback(answers[0] if code is None else {"shard": i, "down": True})

            if not self.submit(index, "S", (), sink, None, "STATS"):
                d.callback({"shard": index, "busy": True})
            d.addTimeout(2, self._reactor, onTimeoutCancel=lambda _r, _t, i=index: {
                "shard": i, "down": True})
            ds.append(d)

        def collect(results: list[tuple[bool, Any]]) -> list[dict[str, Any]]:
            out = []
            for (ok, value), shard in zip(results, self._shards):
                value = dict(value) if ok else {"down": True}
                value["restarts"] = shard.restarts
                out.append(value)
            return out

        return DeferredList(ds).addCallback(collect)

    # --- failure ------------------------------------------------------------------------------

    def _lost(self, index: int, generation: int) -> None:
        shard = self._shards[index]
        if generation != shard.generation:
            return
        shard.connected = False
        inflight, shard.inflight = shard.inflight, {}
        if inflight:
            log.warning("shard %d lost with %d commands in flight", index, len(inflight))
        for sink, txn, cmd in inflight.values():
            sink([Reply(txn, cmd, False, None, ErrorCode.INTERNAL,
                        "the shard stopped before answering; retry with the same txn"
                        ).to_json().encode()],
                 ErrorCode.INTERNAL.value)
        if self._stopping:
            return
        process = shard.process
        if process is not None:
            process.join(0.5)
            if process.is_alive():
                process.kill()
                process.join(2)
            log.warning("shard %d exited with %s; restarting", index, process.exitcode)
        shard.restarts += 1
        shard.config = replace(shard.config, crash_at=None)
        lost_at = time.monotonic()
        self._reactor.callLater(0.05, self._restart, index, lost_at)

    def _restart(self, index: int, lost_at: float) -> None:
        if self._stopping:
            return
        self._spawn(index)
        self.recoveries.append(time.monotonic() - lost_at)
