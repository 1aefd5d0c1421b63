"""The gateway's side of the shards: spawn or connect, route batches, track what is in flight.

Local shards (the default) are child processes on a socketpair; one that dies (its socket
closes) has every command it had in flight answered `internal` (outcome unknown: the client
retries with the same txn and the restarted shard, recovered from the journal, replays or
applies it once), and commands for it wait in its outbox while it restarts.

Remote shards (`daytrade up --shard K=HOST:PORT`) are `daytrade shard` processes on other hosts,
reached over TCP after a handshake. A lost link is answered the same way, then reconnected with
exponential back-off and jitter; commands for a shard that is unreachable wait at most
`shard_wait` seconds and are then answered `shard_unavailable`. A ping each second measures the
round-trip time and finds a link the network cut without a word.
"""

from __future__ import annotations

import logging
import multiprocessing
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import ClientFactory, Factory
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from protocol.errors import ErrorCode
from protocol.replies import Reply
from server.shard_client import ShardClient
from server.shards.channel import Frame, FrameProtocol
from server.shards.worker import ShardConfig, run_shard

log = logging.getLogger("daytrade.gateway")

#: (answers, code) -> None: how answers reach whoever asked. `answers` are reply lines (UTF-8
#: JSON without the newline; STATS: the stats dicts), in request order, several at once when one
#: frame answers several requests of the same sink. `code` is set only when the pool itself
#: answers for a shard that died or cannot be reached (the lines are then error replies).
ReplySink = Callable[[list[Any], str | None], None]

#: Reconnection back-off: the first wait, the factor per failed attempt, the longest wait.
BACKOFF_FIRST = 0.05
BACKOFF_FACTOR = 2.0
BACKOFF_MAX = 1.0
#: Each wait is drawn from [1 - JITTER, 1] of the back-off, so gateways do not reconnect in step.
JITTER = 0.5
#: Seconds between pings of a connected remote shard, and without a pong before the link is
#: taken for cut (a shard answers pings between batches, so a busy one still does).
PING_INTERVAL = 1.0
PING_TIMEOUT = 5.0
#: Seconds a TCP connect may take.
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class RemoteShards:
    """Where the remote shards are and how to reach them."""

    addresses: list[tuple[str, int]]
    secret: bytes
    shard_wait: float = 3.0
    tls_ca: str | None = None  # a PEM certificate to trust: connect over TLS
    dump_dir: str | None = None  # where the gateway writes an all-users DUMPLOG it is given


class _Connector(ClientFactory):
    """Hands one connection attempt its protocol, and reports a failure to connect."""

    def __init__(self, channel: FrameProtocol, failed: Callable[[Failure], None]) -> None:
        self.channel = channel
        self.failed = failed

    def buildProtocol(self, addr: Any) -> FrameProtocol:  # noqa: N802 (Twisted's naming)
        return self.channel

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:  # noqa: N802
        self.failed(reason)


def connect_to_shard(reactor: Any, address: tuple[str, int], channel: FrameProtocol,
                     failed: Callable[[Failure], None], tls_ca: str | None = None) -> None:
    """Connect `channel` to a remote shard at `address` (over TLS when `tls_ca` is given)."""
    host, port = address
    factory = _Connector(channel, failed)
    if tls_ca is None:
        reactor.connectTCP(host, port, factory, timeout=CONNECT_TIMEOUT)
    else:
        from server.tls import client_options

        reactor.connectSSL(host, port, factory, client_options(host, tls_ca),
                           timeout=CONNECT_TIMEOUT)


class _Shard:
    """One shard's process or address, its link and its in-flight requests."""

    def __init__(self, config: ShardConfig | None, address: tuple[str, int] | None) -> None:
        self.config = config
        self.address = address
        self.process: Any = None
        self.channel: FrameProtocol | None = None
        self.connected = False
        self.state = "connecting"  # connected | connecting | down
        self.inflight: dict[int, tuple[ReplySink, int | None, str]] = {}
        # Messages queued while (re)starting or unreachable, with the reactor time queued.
        self.waiting: list[tuple[float, Any]] = []
        self.restarts = 0
        self.started_at = 0.0
        self.generation = 0
        self.attempts = 0  # failed connection attempts since the last good link
        self.retry: Any = None  # the pending reconnection or unavailability timer
        self.expiry: Any = None
        self.ping: LoopingCall | None = None
        self.ping_sent: dict[int, float] = {}
        self.rtt_ms: float | None = None
        self.refusal: str | None = None
        self.ever_ready = False


class ShardPool:
    """All shards of one gateway: local worker processes, or remote shards over TCP."""

    def __init__(self, configs: list[ShardConfig], reactor: Any, *,
                 on_event: Callable[[str, str], None], reserve_txns: Callable[[int], int],
                 queue_limit: int = 50_000, remote: RemoteShards | None = None,
                 seen_txn: Callable[[int], None] = lambda txn: None,
                 rng: random.Random | None = None) -> None:
        self._reactor = reactor
        self._remote = remote
        if remote is None:
            self._shards = [_Shard(cfg, None) for cfg in configs]
        else:
            self._shards = [_Shard(None, address) for address in remote.addresses]
        self._on_event = on_event
        self.reserve_txns = reserve_txns
        self._seen_txn = seen_txn
        # Request ids start at random: a remote shard may still answer a gateway that restarted
        # its requests from before, and those answers must match none of the new ones.
        self._req_ids = secrets.randbelow(1 << 48)
        self._pings = 0
        self._record_waits: dict[int, tuple[int, Deferred[Any]]] = {}  # token -> shard, answer
        self.queue_limit = queue_limit
        self._stopping = False
        self._ctx = multiprocessing.get_context("spawn")
        self._all_ready: Deferred[None] = Deferred()
        self._rng = rng or random.Random()
        self.recoveries: list[float] = []

    @property
    def count(self) -> int:
        return len(self._shards)

    @property
    def remote(self) -> bool:
        return self._remote is not None

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        for index in range(len(self._shards)):
            if self._remote is None:
                self._spawn(index)
            else:
                self._connect(index)

    def ready(self) -> Deferred[None]:
        """Fires once every shard has been connected once (at once for local shards): remote
        shards tell their highest txn in the handshake, and the gateway's txns start above."""
        if self._remote is None and not self._all_ready.called:
            self._all_ready.callback(None)
        return self._all_ready

    def missing(self) -> list[str]:
        """The addresses of remote shards never connected yet, with why when known."""
        return [f"{s.address[0]}:{s.address[1]}" + (f" ({s.refusal})" if s.refusal else "")
                for s in self._shards if s.address is not None and not s.ever_ready]

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
        self._linked(shard, channel)

    def _linked(self, shard: _Shard, channel: FrameProtocol) -> None:
        shard.connected = True
        shard.state = "connected"
        if shard.expiry is not None and shard.expiry.active():
            shard.expiry.cancel()
        shard.expiry = None
        waiting, shard.waiting = shard.waiting, []
        for _queued_at, message in waiting:
            channel.send(message)

    def _connect(self, index: int) -> None:
        shard = self._shards[index]
        assert shard.address is not None and self._remote is not None
        shard.retry = None
        shard.generation += 1
        generation = shard.generation
        remote = self._remote
        channel = ShardClient(index, len(self._shards), remote.secret, "gateway",
                              on_ready=lambda max_txn: self._ready(index, generation, max_txn),
                              on_batch=lambda batch: self._on_batch(index, batch),
                              on_lost=lambda reason: self._lost(index, generation),
                              call_later=self._reactor.callLater)
        shard.channel = channel
        shard.state = "connecting"

        def failed(reason: Failure) -> None:
            shard.refusal = reason.getErrorMessage()
            self._lost(index, generation)

        connect_to_shard(self._reactor, shard.address, channel, failed, remote.tls_ca)

    def _ready(self, index: int, generation: int, max_txn: int) -> None:
        shard = self._shards[index]
        if generation != shard.generation or shard.channel is None:
            return
        self._seen_txn(max_txn)
        if shard.ever_ready:
            log.warning("shard %d at %s:%d connected again", index, *shard.address)
        shard.ever_ready = True
        shard.attempts = 0
        shard.refusal = None
        self._linked(shard, shard.channel)
        shard.ping_sent = {}
        shard.ping = LoopingCall(self._ping, index)
        shard.ping.clock = self._reactor
        shard.ping.start(PING_INTERVAL, now=True)
        if not self._all_ready.called and all(s.ever_ready for s in self._shards):
            self._all_ready.callback(None)

    def _ping(self, index: int) -> None:
        shard = self._shards[index]
        now = self._reactor.seconds()
        if shard.ping_sent and now - min(shard.ping_sent.values()) >= PING_TIMEOUT:
            log.warning("shard %d at %s:%d: no pong for %.0f s; the link is taken for cut",
                        index, *shard.address, PING_TIMEOUT)
            if shard.channel is not None and shard.channel.transport is not None:
                shard.channel.transport.abortConnection()
            return
        self._pings += 1
        shard.ping_sent[self._pings] = now
        if shard.channel is not None:
            shard.channel.send((Frame.PING, self._pings))

    def stop(self, timeout: float = 5.0) -> Deferred[None]:
        """Close every shard's channel; local workers exit on EOF. Fires once all have exited
        (stragglers are killed after `timeout`). Never blocks the reactor: closing a socket
        happens in a later reactor turn, and exits are polled."""
        self._stopping = True
        for shard in self._shards:
            for call in (shard.retry, shard.expiry):
                if call is not None and call.active():
                    call.cancel()
            if shard.ping is not None and shard.ping.running:
                shard.ping.stop()
            if shard.channel is not None and shard.channel.transport is not None:
                shard.channel.flush()
                shard.channel.transport.loseConnection()
        done: Deferred[None] = Deferred()
        deadline = time.monotonic() + timeout
        killed = False

        def check() -> None:
            nonlocal killed, deadline
            alive = [s.process for s in self._shards
                     if s.process is not None and s.process.is_alive()]
            if alive and time.monotonic() < deadline:
                self._reactor.callLater(0.02, check)
                return
            if alive and not killed:  # reaped by is_alive() in the next checks
                for process in alive:
                    process.kill()
                killed = True
                deadline = time.monotonic() + 1.0
                self._reactor.callLater(0.02, check)
                return
            done.callback(None)

        self._reactor.callLater(0, check)
        return done

    def pids(self) -> list[int | None]:
        return [s.process.pid if s.process is not None else None for s in self._shards]

    def kill(self, index: int, sig: int = 9) -> None:
        """Send a signal to a local shard process (tests and the reliability battery)."""
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
            return
        if self._remote is not None:
            if message[0] == Frame.TXNS:
                return  # the shard asks again once connected
            if shard.expiry is None:
                shard.expiry = self._reactor.callLater(self._remote.shard_wait,
                                                       self._unavailable, index)
        shard.waiting.append((self._reactor.seconds(), message))

    def _unavailable(self, index: int) -> None:
        """Answer what has waited `shard_wait` seconds for an unreachable shard."""
        shard = self._shards[index]
        assert self._remote is not None
        shard.expiry = None
        wait = self._remote.shard_wait
        now = self._reactor.seconds()
        expired = 0
        while expired < len(shard.waiting) and shard.waiting[expired][0] + wait <= now:
            expired += 1
        gone, shard.waiting = shard.waiting[:expired], shard.waiting[expired:]
        where = f"{shard.address[0]}:{shard.address[1]}" if shard.address else "local"
        for _queued_at, message in gone:
            if message[0] == Frame.RECORDS:
                self._fail_record_waits(index, f"shard {index} at {where} cannot be reached")
                continue
            entry = shard.inflight.pop(message[1], None)
            if entry is None:
                continue
            sink, txn, cmd = entry
            sink([Reply(txn, cmd, False, None, ErrorCode.SHARD_UNAVAILABLE,
                        f"the shard of this user ({index}, at {where}) cannot be reached; "
                        "nothing was done, retry later").to_json().encode()],
                 ErrorCode.SHARD_UNAVAILABLE.value)
        if shard.waiting:
            delay = max(0.0, shard.waiting[0][0] + wait - now)
            shard.expiry = self._reactor.callLater(delay, self._unavailable, index)

    def _on_batch(self, index: int, batch: list[list[Any]]) -> None:
        inflight = self._shards[index].inflight
        on_event = self._on_event
        pop = inflight.pop
        for msg in batch:
            kind = msg[0]
            if kind == Frame.REPLIES:
                # Each sink gets all of its lines at once: one write per client connection.
                groups: dict[ReplySink, list[bytes]] = {}
                for req_id, line in zip(msg[1], msg[2].encode().split(b"\n")):
                    entry = pop(req_id, None)
                    if entry is not None:
                        lines = groups.get(entry[0])
                        if lines is None:
                            groups[entry[0]] = [line]
                        else:
                            lines.append(line)
                for sink, lines in groups.items():
                    sink(lines, None)
            elif kind == Frame.EVENT:
                on_event(msg[1], msg[2])
            elif kind == Frame.TXNS:  # txns for trigger firings, on the same ordered channel
                self._send(index, (Frame.TXNS, msg[1], self.reserve_txns(msg[2])))
            elif kind == Frame.STATS:
                entry = pop(msg[1], None)
                if entry is not None:
                    entry[0]([msg[2]], None)
            elif kind == Frame.DUMP:
                entry = pop(msg[1], None)
                if entry is not None:
                    self._dump(entry[0], msg[2], msg[3])
            elif kind == Frame.RECORDS:
                waiting = self._record_waits.pop(msg[1], None)
                if waiting is not None:
                    if msg[2] is None:
                        waiting[1].errback(RuntimeError(f"shard {index}: {msg[3]}"))
                    else:
                        waiting[1].callback((msg[2], msg[3]))
            elif kind == Frame.PONG:
                shard = self._shards[index]
                sent = shard.ping_sent.pop(msg[1], None)
                if sent is not None:
                    shard.rtt_ms = round((self._reactor.seconds() - sent) * 1000, 3)

    def _dump(self, sink: ReplySink, txn: int, filename: str) -> None:
        """Write an all-users DUMPLOG from every remote shard's journal (server/remote_dump)."""
        from pathlib import Path

        from server.remote_dump import RemoteDump

        assert self._remote is not None and self._remote.dump_dir is not None
        RemoteDump(len(self._shards), self.fetch_records, Path(self._remote.dump_dir), txn,
                   filename, sink).start()

    def fetch_records(self, index: int, after_seq: int, limit: int) -> Deferred[Any]:
        """Shard `index`'s journal records after `after_seq`: fires with (max_txn, rows), or
        fails when the shard is lost or unreachable meanwhile."""
        self._pings += 1  # one counter of tokens for pings and record requests
        token = self._pings
        d: Deferred[Any] = Deferred()
        self._record_waits[token] = (index, d)
        self._send(index, (Frame.RECORDS, token, after_seq, limit))
        return d

    def _fail_record_waits(self, index: int, why: str) -> None:
        for token, (shard, d) in list(self._record_waits.items()):
            if shard == index:
                del self._record_waits[token]
                d.errback(RuntimeError(why))

    def stats(self) -> Deferred[list[dict[str, Any]]]:
        """Every shard's STATS (a shard that does not answer within 2 s reports itself down),
        with its address, state and round-trip time."""
        ds = []
        for index, shard in enumerate(self._shards):
            d: Deferred[dict[str, Any]] = Deferred()
            if self._remote is not None and not shard.connected:
                d.callback({"shard": index, "down": True})
                ds.append(d)
                continue

            def sink(answers: list[Any], code: str | None, d: Deferred = d,
                     i: int = index) -> None:
                if not d.called:  # an error reply (code set) means the shard died meanwhile
                    d.callback(answers[0] if code is None else {"shard": i, "down": True})

            if not self.submit(index, Frame.STATS, (), sink, None, "STATS"):
                d.callback({"shard": index, "busy": True})
            d.addTimeout(2, self._reactor, onTimeoutCancel=lambda _r, _t, i=index: {
                "shard": i, "down": True})
            ds.append(d)

        def collect(results: list[tuple[bool, Any]]) -> list[dict[str, Any]]:
            out = []
            for (ok, value), shard in zip(results, self._shards):
                value = dict(value) if ok else {"down": True}
                value["restarts"] = shard.restarts
                value["state"] = shard.state
                if shard.address is not None:
                    value["address"] = f"{shard.address[0]}:{shard.address[1]}"
                    value["rtt_ms"] = shard.rtt_ms
                out.append(value)
            return out

        return DeferredList(ds).addCallback(collect)

    # --- failure ------------------------------------------------------------------------------

    def _lost(self, index: int, generation: int) -> None:
        shard = self._shards[index]
        if generation != shard.generation:
            return
        was_connected = shard.connected
        shard.connected = False
        shard.state = "down"
        if shard.ping is not None and shard.ping.running:
            shard.ping.stop()
        inflight, shard.inflight = shard.inflight, {}
        # Requests still waiting to be sent were never seen by the shard: they stay queued.
        unsent = {message[1] for _at, message in shard.waiting}
        kept = {k: v for k, v in inflight.items() if k in unsent}
        shard.inflight = kept
        lost = [v for k, v in inflight.items() if k not in unsent]
        if lost:
            log.warning("shard %d lost with %d commands in flight", index, len(lost))
        self._fail_record_waits(index, f"shard {index} was lost while its journal was read")
        for sink, txn, cmd in lost:
            sink([Reply(txn, cmd, False, None, ErrorCode.INTERNAL,
                        "the shard stopped before answering; retry with the same txn"
                        ).to_json().encode()],
                 ErrorCode.INTERNAL.value)
        if self._stopping:
            return
        lost_at = time.monotonic()
        if self._remote is not None:
            self._reconnect_later(index, was_connected)
            return
        shard.restarts += 1
        assert shard.config is not None
        shard.config = replace(shard.config, crash_at=None)
        self._reactor.callLater(0, self._reap, index, lost_at, time.monotonic() + 0.5, False)

    def _reap(self, index: int, lost_at: float, deadline: float, killed: bool) -> None:
        """Wait (polling, never blocking the reactor) for a lost local shard's process to end,
        killing it after half a second, then start a new one."""
        if self._stopping:
            return
        process = self._shards[index].process
        if process is not None and process.is_alive():
            if time.monotonic() >= deadline and not killed:
                process.kill()
                killed, deadline = True, time.monotonic() + 2.0
            if time.monotonic() < deadline or not killed:
                self._reactor.callLater(0.02, self._reap, index, lost_at, deadline, killed)
                return
        if process is not None:
            log.warning("shard %d exited with %s; restarting", index, process.exitcode)
        self._reactor.callLater(0.05, self._restart, index, lost_at)

    def _restart(self, index: int, lost_at: float) -> None:
        if self._stopping:
            return
        self._spawn(index)
        self.recoveries.append(time.monotonic() - lost_at)

    def _reconnect_later(self, index: int, was_connected: bool) -> None:
        shard = self._shards[index]
        channel = shard.channel
        if isinstance(channel, ShardClient) and channel.refusal is not None:
            shard.refusal = channel.refusal
        if was_connected:
            shard.restarts += 1
            log.warning("shard %d at %s:%d lost; reconnecting", index, *shard.address)
        elif shard.refusal and shard.attempts == 0:
            log.error("shard %d at %s:%d: %s", index, *shard.address, shard.refusal)
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * BACKOFF_FACTOR ** shard.attempts)
        delay *= 1.0 - JITTER * self._rng.random()
        shard.attempts += 1
        shard.retry = self._reactor.callLater(delay, self._connect, index)
        if shard.waiting and shard.expiry is None:
            assert self._remote is not None
            first = shard.waiting[0][0]
            shard.expiry = self._reactor.callLater(
                max(0.0, first + self._remote.shard_wait - self._reactor.seconds()),
                self._unavailable, index)
