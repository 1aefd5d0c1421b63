"""One shard at work: per-user ordering, quotes, the journal's group commit, expiry, the sweep.

Each user's commands run strictly in order; a command waiting for a quote parks only its own
user's queue, so a slow quote never holds up another user of the shard. Every engine call is
made from an input (server/shards/inputs.py) that is kept for the journal; everything applied in
one reactor turn is appended as one record (group commit) on a thread of its own, and the
replies of the batch are released only once it is durable. A failed append stops the process:
the gateway answers its in-flight commands `internal` and restarts the shard, which recovers by
loading its newest snapshot and replaying the journal after it. Snapshots are taken in the
background, of the accounts changed since the previous one, once the journal has grown by
SNAPSHOT_EVERY inputs or the last snapshot is `snapshot_interval` old.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from protocol import commands as c
from protocol.errors import ErrorCode, ProtocolError
from protocol.parser import parse_request
from protocol.quote import PriceQuote
from protocol.replies import Reply
from server.quotes.cache import renewal_due
from server.shards import inputs as inp
from server.shards import recovery
from server.shards.channel import Frame, pack_records
from server.shards.engine import DumpRequest, Engine, NeedQuote, quote_unavailable
from server.shards.snapshots import SNAPSHOT_EVERY, SNAPSHOT_SLICE_GAP, SnapshotTaker
from server.shards.threadname import set_native_name
from server.store import codec
from server.store.journal_port import JournalFenced, ShardJournal

log = logging.getLogger("daytrade.shard")

#: Key of the parked queue that orders all-users DUMPLOGs among themselves.
_ALL_USERS = "\x00all"
#: Exit status of a shard that found another writer of its journal (never restart it blindly).
EXIT_FENCED = 75


def shard_of(user: str, shards: int) -> int:
    """The shard that owns `user` (DESIGN.md: crc32(user) % N)."""
    return zlib.crc32(user.encode("utf-8", "surrogateescape")) % shards


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class SerialWorker:
    """Runs jobs one after another on a thread of its own, reporting each back to the reactor
    thread; a plain queue and `callFromThread`, none of a thread pool's per-call work."""

    def __init__(self, reactor: Any, name: str) -> None:
        self._reactor = reactor
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Callable[..., None],
                                             Callable[[Failure], None]] | None]
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Callable[[], Any], done: Callable[[Any], None],
               failed: Callable[[Failure], None]) -> None:
        """Run `job()`; then `done(result)` or `failed(failure)` runs in the reactor thread."""
        self._queue.put((job, done, failed))

    def stop(self) -> None:
        """Finish the jobs already submitted, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _loop(self) -> None:
        set_native_name(self._thread.name)  # for top -H, /proc and the bench's CPU per thread
        call = self._reactor.callFromThread
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, done, failed = item
            try:
                result = job()
            except BaseException:  # reported in the reactor thread, which decides
                call(failed, Failure())
            else:
                call(done, result)


@dataclass(frozen=True)
class DumpSettings:
    """Where DUMPLOG files go and how the dump thread opens every shard's journal to read."""

    dump_dir: Path
    open_journal: Callable[[int], ShardJournal]
    #: Whether every shard's journal can be read here, asked at each all-users DUMPLOG: not
    #: on a remote shard whose SQLite files are on a volume of its own.
    every_journal: Callable[[], bool] = lambda: True


class ShardService:
    """The engine of one shard, driven by batches of messages from the gateway."""

    def __init__(self, index: int, count: int, engine: Engine, journal: ShardJournal,
                 quotes: Any, send: Callable[[tuple[Any, ...]], None], dumps: DumpSettings, *,
                 reactor: Any, sweep_interval: float = 2.0, snapshot_interval: float = 30.0,
                 snapshot_every: int = SNAPSHOT_EVERY,
                 snapshot_slice_gap: float = SNAPSHOT_SLICE_GAP, renew_ahead_ms: int = 0,
                 clock: Callable[[], int] = now_ms, crash_at: str | None = None,
                 threaded: bool = True, exit: Callable[[int], Any] = os._exit) -> None:
        self.index = index
        self.count = count
        self.engine = engine
        self.journal = journal
        self.quotes = quotes
        self._send = send
        self._dumps = dumps
        self._reactor = reactor
        self._clock = clock
        self._crash_at = crash_at
        self._threaded = threaded
        self._exit = exit  # the process's end (tests watch it instead)
        self._parked: dict[str, deque[tuple[int, int, str, Any]]] = {}
        self._replies: list[tuple[int, Reply]] = []
        self._after_commit: list[tuple[int, DumpRequest]] = []
        self._inputs: list[list[Any]] = []
        self._seq = 0  # the last record handed to the journal
        self.max_txn = 0  # the highest txn journaled (a new gateway's txns start above it)
        self._flush_call: Any = None
        self._committing = False
        self._flush_again = False
        self._commits = SerialWorker(reactor, f"shard-{index}-commit")
        self._snapshot_thread = SerialWorker(reactor, f"shard-{index}-snapshot")
        self.snapshots = SnapshotTaker(
            engine, journal, reactor, index=index, on_captured=self._schedule_expiry,
            submit=self._snapshot_thread.submit if threaded else None,
            slice_gap=snapshot_slice_gap)
        self._snapshot_due = False
        self._snapshot = LoopingCall(self._snapshot_tick)
        self._snapshot.clock = reactor
        self._snapshot_interval = snapshot_interval
        self._snapshot_every = snapshot_every
        self._inputs_since_snapshot = 0
        self._expiry_call: Any = None
        self._expiry_at: int | None = None
        self._txn_waits: dict[int, Callable[[int], None]] = {}
        self._txn_asked: dict[int, int] = {}  # token -> count, until answered
        self._txn_tokens = itertools.count(1)
        self.commands = 0
        self.batches = 0
        self.replayed = 0
        self.errors: Counter[Any] = Counter()  # by error code, text made only for STATS
        self._sweep = LoopingCall(self.sweep)
        self._sweep.clock = reactor
        self._sweep_interval = sweep_interval
        self._sweeping = False
        self._renew_ahead_ms = renew_ahead_ms

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Recover the shard's state from its journal, then start the workers and timers."""
        self.recover()
        if self._threaded:
            self._commits.start()
            self._snapshot_thread.start()
        self._sweep.start(self._sweep_interval, now=False)
        self._snapshot.start(self._snapshot_interval, now=False)
        # Entries that expired while the shard was down are released at once.
        self._expire()

    def recover(self) -> None:
        """Load the newest snapshot and replay the journal after it through the engine."""
        started = time.monotonic()
        state = recovery.recover(self.engine, self.journal)
        log.info("shard %d recovered in %.2f s: %d accounts, the snapshot of record %d, then "
                 "%d records (%d inputs) replayed", self.index, time.monotonic() - started,
                 len(self.engine.accounts), state.snapshot_seq, state.replayed, state.inputs)
        self._seq = state.seq
        self.max_txn = self.journal.max_txn()
        self.replayed = state.replayed
        self.snapshots.tx_saved = state.tx_saved
        self._inputs_since_snapshot = state.inputs
        if state.replayed:  # accounts the tail changed are not in the snapshot yet
            self.snapshots.touched.update(self.engine.accounts)

    def stop(self) -> None:
        """Stop the timers, finish the appends under way, journal what is left and snapshot."""
        for loop in (self._sweep, self._snapshot):
            if loop.running:
                loop.stop()
        for call in (self._flush_call, self._expiry_call):
            if call is not None and call.active():
                call.cancel()
        self._commits.stop()
        self._snapshot_thread.stop()  # a snapshot handed to the thread is written
        self.snapshots.abandon()  # one still being captured or encoded never will be
        effects = self.engine.drain()
        if self._inputs:
            inputs, self._inputs = self._inputs, []
            self._seq += 1
            self._append(self._seq, inputs, effects.events)
        if self.snapshots.touched:
            self.snapshots.write_now(self._seq)

    # --- messages from the gateway ------------------------------------------------------------

    def on_batch(self, messages: list[tuple[Any, ...]]) -> None:
        for msg in messages:
            kind = msg[0]
            if kind == Frame.COMMAND:
                self._command(msg[1], msg[2], msg[3])
            elif kind == Frame.OPEN:
                self._open_account(msg[1], msg[2], msg[3])
            elif kind == Frame.TXNS:
                wait = self._txn_waits.pop(msg[1], None)
                if wait is not None:
                    del self._txn_asked[msg[1]]
                    wait(msg[2])
            elif kind == Frame.EXISTS:
                self._send((Frame.STATS, msg[1], {"exists": msg[2] in self.engine.accounts}))
            elif kind == Frame.STATS:
                self._send((Frame.STATS, msg[1], self.stats()))
            elif kind == Frame.PING:
                self._send((Frame.PONG, msg[1]))
            elif kind == Frame.RECORDS:
                self._send_records(msg[1], msg[2], msg[3])
        self._schedule_flush()

    def _command(self, req_id: int, now: int, line: str) -> None:
        self.commands += 1
        try:
            cmd = parse_request(line)
        except ProtocolError as exc:
            self._reject(req_id, now, line, exc)
            return
        if not cmd.TRADING:
            self._reply(req_id, Reply(cmd.txn, cmd.NAME, False, None, ErrorCode.BAD_REQUEST,
                                      f"{cmd.NAME} is not a trading command"))
            return
        key = cmd.user if cmd.user is not None else _ALL_USERS
        waiting = self._parked.get(key)
        if waiting is not None:
            waiting.append((req_id, now, line, cmd))
            return
        self._run(key, req_id, now, line, cmd)

    def _reject(self, req_id: int, now: int, line: str, exc: ProtocolError) -> None:
        if exc.txn is None:
            self._reply(req_id, Reply(None, exc.command, False, None, exc.code, exc.message))
            return
        self._inputs.append([inp.COMMAND, now, line, None])
        if exc.user is not None:
            self.snapshots.changing(exc.user)
        self._reply(req_id, self.engine.reject(exc.command, exc.user, exc.txn, now, exc.code,
                                               exc.message))

    def _open_account(self, req_id: int, now: int, user: str) -> None:
        self.snapshots.changing(user)
        created = self.engine.open_account(user, now)
        if created:
            self._inputs.append([inp.OPEN, now, user])
        self._reply(req_id, Reply(None, "LOGIN", True, {"user": user, "created": created}))

    # --- running commands in per-user order ---------------------------------------------------

    def _run(self, key: str, req_id: int, now: int, line: str, cmd: c.TradingCommand) -> bool:
        """Execute; returns False when the command had to park its user's queue."""
        user = cmd.user
        if user is not None:
            self.snapshots.changing(user)
            # Expiry due at the command's stamp is an input of its own: the command itself may
            # wait for a quote while other inputs are applied.
            if self.engine.expire_user(user, now):
                self._inputs.append([inp.EXPIRE, now, user])
        outcome = self.engine.execute(cmd, now)
        quote = None
        if type(outcome) is NeedQuote:
            quote = self.quotes.peek(outcome.symbol, now)
            if quote is not None:
                if self._renew_ahead_ms and renewal_due(quote, now, self._renew_ahead_ms):
                    self._renew(quote.symbol, outcome.user, now)
                outcome = self.engine.execute(cmd, now, quote)
        if type(outcome) is NeedQuote:
            # Park first: a cached quote calls back at once, and its callback un-parks.
            self._parked[key] = deque()
            d = self.quotes.get(outcome.symbol, outcome.user, now)
            d.addCallbacks(self._quote_arrived, self._quote_failed,
                           callbackArgs=(key, req_id, now, line, cmd),
                           errbackArgs=(key, req_id, now, line, cmd))
            return key not in self._parked
        self._applied(now, line, quote)
        if type(outcome) is DumpRequest:
            self._parked[key] = deque()
            self._after_commit.append((req_id, outcome))
            self._schedule_flush()
            return False
        self._reply(req_id, outcome)
        return True

    def _applied(self, now: int, line: str, quote: PriceQuote | None) -> None:
        self._inputs.append([inp.COMMAND, now, line, inp.quote_data(quote)])

    def _quote_arrived(self, quote: PriceQuote, key: str, req_id: int, now: int, line: str,
                       cmd: c.TradingCommand) -> None:
        if cmd.user is not None:
            self.snapshots.changing(cmd.user)
        outcome = self.engine.execute(cmd, now, quote)
        if type(outcome) is NeedQuote:  # the quote could not back it (too old): no retry loop
            quote = quote_unavailable()
            outcome = self.engine.execute(cmd, now, quote)
        self._applied(now, line, quote)
        self._reply(req_id, outcome)
        self._resume(key)

    def _quote_failed(self, failure: Failure, key: str, req_id: int, now: int, line: str,
                      cmd: c.TradingCommand) -> None:
        log.info("quote for %s failed: %s", cmd.line(), failure.getErrorMessage())
        if cmd.user is not None:
            self.snapshots.changing(cmd.user)
        quote = quote_unavailable()
        outcome = self.engine.execute(cmd, now, quote)
        self._applied(now, line, quote)
        self._reply(req_id, outcome)
        self._resume(key)

    def _resume(self, key: str) -> None:
        """The user's command in progress finished: run the waiting ones until one parks again."""
        waiting = self._parked.pop(key, None)
        while waiting:
            req_id, now, line, cmd = waiting.popleft()
            if not self._run(key, req_id, now, line, cmd):
                self._parked[key].extend(waiting)
                break
        else:
            if key != _ALL_USERS:
                # The expiry timer passed this user over while its queue was busy.
                self._expire_user(key, self._clock())
        self._schedule_flush()

    def _expire_user(self, user: str, now: int) -> None:
        if user not in self.engine.accounts:
            return
        self.snapshots.changing(user)
        if self.engine.expire_user(user, now):
            self._inputs.append([inp.EXPIRE, now, user])

    def _reply(self, req_id: int, reply: Reply) -> None:
        self._replies.append((req_id, reply))
        if not reply.ok:
            self.errors[reply.code] += 1

    # --- group commit ---------------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if self._committing:
            # The end of the commit in progress flushes: no timer needed meanwhile.
            self._flush_again = True
        elif self._flush_call is None:
            self._flush_call = self._reactor.callLater(0, self._flush_on_timer)

    def _flush_on_timer(self) -> None:
        self._flush_call = None
        self.flush()

    def flush(self) -> None:
        """Journal everything applied since the last flush, then release its replies.

        One append runs at a time, on the commit thread, while the reactor keeps executing
        commands; what accumulates meanwhile goes out in the next record (group commit), so an
        fsync never stalls the shard.
        """
        if self._committing:
            self._flush_again = True
            return
        if not (self._replies or self._after_commit or self._inputs
                or self.engine.has_effects()):
            return
        effects = self.engine.drain()
        if self._crash_at == "after_apply":
            os._exit(137)
        replies, self._replies = self._replies, []
        dumps, self._after_commit = self._after_commit, []
        args = (replies, effects.pushes, dumps)
        if not self._inputs:  # reads answered from memory and retries: nothing to journal
            self._release(*args)
            return
        inputs, self._inputs = self._inputs, []
        self._seq += 1
        seq = self._seq
        self._inputs_since_snapshot += len(inputs)
        if not self.snapshots.busy and (self._snapshot_due or (
                self._inputs_since_snapshot >= self._snapshot_every)):
            self._begin_snapshot(seq)
        self._committing = True
        if not self._threaded:
            try:
                self._append(seq, inputs, effects.events)
            except BaseException:
                self._commit_failed(Failure())
                return
            self._committed(seq, *args)
            return
        events = effects.events
        self._commits.submit(lambda: self._append(seq, inputs, events),
                             lambda _: self._committed(seq, *args), self._commit_failed)

    def _append(self, seq: int, inputs: list[list[Any]], events: list[Any]) -> None:
        max_txn = max((e.txn for e in events), default=0)
        self.journal.append(seq, max_txn, codec.encode_record(inputs, events))
        if max_txn > self.max_txn:  # written by the commit thread only
            self.max_txn = max_txn

    def _committed(self, seq: int, replies: list[tuple[int, Reply]],
                   pushes: list[tuple[str, Any]], dumps: list[tuple[int, DumpRequest]]) -> None:
        self.batches += 1
        self._committing = False
        if self._crash_at == "after_commit":
            os._exit(137)
        self._release(replies, pushes, dumps)
        self.snapshots.durable(seq)
        if self._flush_again:
            self._flush_again = False
            self.flush()

    def _commit_failed(self, failure: Failure) -> None:
        # The engine already changed memory the journal does not have: stop rather than
        # acknowledge; the gateway restarts the shard, which recovers from the journal.
        if failure.check(JournalFenced):
            log.critical("shard %d stops: %s", self.index, failure.getErrorMessage())
            self._exit(EXIT_FENCED)
            return
        log.error("append failed; shard %d stops: %s", self.index, failure.getTraceback())
        self._exit(70)

    def _release(self, replies: list[tuple[int, Reply]], pushes: list[tuple[str, Any]],
                 dumps: list[tuple[int, DumpRequest]]) -> None:
        send = self._send
        if replies:
            # One message for all replies: their ids and their lines joined, so the gateway
            # unpickles two objects instead of a tuple per reply.
            send((Frame.REPLIES, [r[0] for r in replies],
                  "\n".join([r[1].to_json() for r in replies])))
        for user, event in pushes:
            send((Frame.EVENT, user, event.to_json()))
        for req_id, request in dumps:
            self._start_dump(req_id, request)
        self._schedule_expiry()

    # --- snapshots ----------------------------------------------------------------------------

    def _snapshot_tick(self) -> None:
        """The newest snapshot is `snapshot_interval` old: take one if anything changed."""
        if not self.snapshots.touched or self.snapshots.busy:
            return
        if self._committing or self._inputs:
            self._snapshot_due = True  # taken by the next flush, as of its record
        else:
            self._begin_snapshot(self._seq)

    def _begin_snapshot(self, seq: int) -> None:
        """Snapshot the state as it is now, which reflects journal records 1 .. seq."""
        self._snapshot_due = False
        self._inputs_since_snapshot = 0
        self.snapshots.begin(seq)

    # --- DUMPLOG ------------------------------------------------------------------------------

    def _start_dump(self, req_id: int, request: DumpRequest) -> None:
        from server.audit.dumpfile import dump_events, render_events

        settings = self._dumps
        key = request.user if request.user is not None else _ALL_USERS
        if request.user is None and not settings.every_journal():
            # The gateway pulls every shard's records and writes the file (server/remote_dump).
            self._send((Frame.DUMP, req_id, request.txn, request.filename))
            self._resume(key)
            return
        shards = (range(self.count) if request.user is None
                  else [shard_of(request.user, self.count)])

        def work() -> dict[str, Any]:
            from server.audit.merge import merged_events
            from server.audit.parallel_dump import dump_all_users

            journals = [settings.open_journal(i) for i in shards]
            try:
                if request.user is None:
                    # The whole log: decoded, sorted and rendered by worker processes on
                    # every core when it is large (server/audit/parallel_dump.py).
                    result = dump_all_users(journals, settings.dump_dir, request.filename)
                else:
                    streams = [(codec.decode_event_rows(data) for _, data in j.records())
                               for j in journals]
                    events = merged_events(streams, user=request.user)
                    if request.filename == "-":
                        xml = render_events(events)
                        # Each event ends with "\n\t</kind>": its opening tag begins "\n\t<"
                        # too, and counting that pattern counted every event twice.
                        return {"xml": xml, "events": xml.count("\n\t</")}
                    result = dump_events(events, settings.dump_dir, request.filename)
                reply = {"path": str(result.path), "events": result.events}
                if result.replaced:  # another request's name may have reduced to the same one
                    reply["replaced"] = True
                return reply
            finally:
                for j in journals:
                    j.close()

        def done(result: dict[str, Any]) -> None:
            self._reply(req_id, Reply(request.txn, "DUMPLOG", True, result))
            self._resume(key)

        def failed(failure: Failure) -> None:
            log.error("DUMPLOG failed: %s", failure.getTraceback())
            code = ErrorCode.BAD_ARGUMENT if failure.check(ValueError) else ErrorCode.INTERNAL
            self._reply(req_id, Reply(request.txn, "DUMPLOG", False, None, code,
                                      f"DUMPLOG failed: {failure.getErrorMessage()}"))
            self._resume(key)

        threads.deferToThread(work).addCallbacks(done, failed)

    def _send_records(self, token: int, after_seq: int, limit: int) -> None:
        """Up to `limit` journal records after `after_seq`, read on a thread, for the gateway's
        all-users DUMPLOG (server/remote_dump.py)."""
        def read() -> tuple[int, list[list[Any]]]:
            rows = list(itertools.islice(self.journal.records(after_seq), max(1, limit)))
            return self.journal.max_txn(), pack_records(rows)

        def failed(failure: Failure) -> None:  # the gateway's DUMPLOG fails, saying why
            log.error("reading journal records for a DUMPLOG failed: %s", failure.getTraceback())
            self._send((Frame.RECORDS, token, None, failure.getErrorMessage()))

        d = threads.deferToThread(read)
        d.addCallbacks(lambda answer: self._send((Frame.RECORDS, token, *answer)), failed)

    # --- timers: expiry and the trigger sweep -------------------------------------------------

    def _schedule_expiry(self) -> None:
        at = self.engine.next_expiry()
        if at is None or (self._expiry_at is not None and self._expiry_at <= at
                          and self._expiry_call is not None and self._expiry_call.active()):
            return
        if self._expiry_call is not None and self._expiry_call.active():
            self._expiry_call.cancel()
        self._expiry_at = at
        delay = max(0.0, (at - self._clock()) / 1000.0)
        self._expiry_call = self._reactor.callLater(delay, self._expire)

    def _expire(self) -> None:
        self._expiry_call = None
        self._expiry_at = None
        if self.snapshots.capturing:
            # Which accounts expire is known only as they do, too late to capture them first:
            # the entries expire (dated at their expiry time) once the capture is done, a few
            # reactor turns later; a user who acts meanwhile has its own expire first (_run).
            return
        now = self._clock()
        # A user with commands queued is passed over: they are judged at their own stamps
        # first, and the user's expiry runs once its queue is empty (_resume).
        expired = self.engine.expire_due(now, self._parked)
        for user in expired:
            self._inputs.append([inp.EXPIRE, now, user])
            self.snapshots.touched.add(user)  # (no capture under way: see above)
        if expired:
            self._schedule_flush()
        else:
            self._schedule_expiry()

    def sweep(self) -> Deferred[None] | None:
        """Check every symbol with an armed trigger against one usable quote, fire what crosses.

        Firings take their txns from the gateway, the one allocator of txns, once the quotes
        are in: each is then above every txn the gateway gave out before."""
        if self._sweeping:
            return None
        armed = self.engine.armed_symbols()
        if not armed:
            return None
        self._sweeping = True
        d = self.quotes.get_many(list(armed), armed, self._clock())
        d.addCallback(self._sweep_quotes)

        def finished(result: Any) -> None:
            self._sweeping = False
            if isinstance(result, Failure):
                log.warning("trigger sweep failed: %s", result.getErrorMessage())

        d.addBoth(finished)
        return d

    def _sweep_quotes(self, quotes: dict[str, PriceQuote]) -> Deferred[None] | None:
        at = self._clock()
        needed = sum(len(self.engine.crossings(q, at)) or int(q.fresh) for q in quotes.values())
        if not needed:
            return None
        d = self.take_txns(needed)
        d.addCallback(self._fire, needed, quotes)
        return d

    def _fire(self, first: int, needed: int, quotes: dict[str, PriceQuote]) -> None:
        at = self._clock()
        txns = iter(range(first, first + needed))
        for quote in quotes.values():
            crossings = self.engine.crossings(quote, at)
            wanted = len(crossings) or int(quote.fresh)
            if not wanted:
                continue
            taken = list(itertools.islice(txns, wanted))
            if not taken:  # more crosses than when the txns were asked for: the next sweep
                break
            # The owners of what fires change, and so does the account a fresh quote's hit is
            # audited on.
            for user in {quote.user, *(user for user, _is_buy in crossings)}:
                if user in self.engine.accounts:
                    self.snapshots.changing(user)
            self._inputs.append([inp.FIRE, at, inp.quote_data(quote), taken])
            inp.fire(self.engine, at, quote, taken)
        self._schedule_flush()

    def _renew(self, symbol: str, user: str, now: int) -> None:
        """Renew a quote in use before it runs out. A fetched one is audited like a sweep's
        quote, under a txn from the gateway, and fires whatever triggers it crosses."""
        d = self.quotes.renew(symbol, user, now, self._renew_ahead_ms)
        if d is None:
            return
        d.addCallback(lambda quote: self._sweep_quotes({symbol: quote}))
        d.addErrback(lambda failure: log.info("renewing the quote of %s failed: %s", symbol,
                                              failure.getErrorMessage()))

    def take_txns(self, count: int) -> Deferred[int]:
        """`count` fresh txns from the gateway: fires with the first of them."""
        token = next(self._txn_tokens)
        d: Deferred[int] = Deferred()
        self._txn_waits[token] = d.callback
        self._txn_asked[token] = count
        self._send((Frame.TXNS, token, count))
        return d

    def ask_again(self) -> None:
        """Ask a newly connected gateway for the txns still awaited (the one that was asked
        may have gone with its answer)."""
        for token, count in self._txn_asked.items():
            self._send((Frame.TXNS, token, count))

    # --- STATS --------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        quote_stats = self.quotes.stats() if hasattr(self.quotes, "stats") else {}
        hits = quote_stats.get("hits_local", 0) + quote_stats.get("hits_redis", 0)
        lookups = hits + quote_stats.get("fetches", 0)
        return {
            "shard": self.index,
            "pid": os.getpid(),
            "commands": self.commands,
            "batches": self.batches,
            "journal_seq": self._seq,
            "replayed_at_start": self.replayed,
            "queue_depth": sum(len(q) + 1 for q in self._parked.values()),
            "users_loaded": len(self.engine.accounts),
            "quotes": quote_stats,
            "cache_hit_rate": round(hits / lookups, 4) if lookups else None,
            "errors": {str(code): n for code, n in self.errors.items()},
        }
