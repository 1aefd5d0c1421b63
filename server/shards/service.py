"""One shard at work: per-user ordering, quotes, group commit, expiry timers, the trigger sweep.

Each user's commands run strictly in order; a command waiting for a quote parks only its own
user's queue, so a slow quote never holds up another user of the shard. Replies are released only
after the batch that produced them is committed to the store (group commit): everything executed
in one reactor turn goes to the store in one write, and a failed write stops the process (the
gateway answers its in-flight commands `internal` and restarts the shard, which recovers from the
store).
"""

from __future__ import annotations

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
from server.shards.engine import DumpRequest, Engine, NeedQuote, quote_unavailable
from server.store.port import Batch, Store

log = logging.getLogger("daytrade.shard")

#: Key of the parked queue that orders all-users DUMPLOGs among themselves.
_ALL_USERS = "\x00all"


def shard_of(user: str, shards: int) -> int:
    """The shard that owns `user` (DESIGN.md: crc32(user) % N)."""
    return zlib.crc32(user.encode("utf-8", "surrogateescape")) % shards


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class CommitThread:
    """Runs store commits one after another on a thread of its own, reporting each back to the
    reactor thread; a plain queue and `callFromThread`, none of a thread pool's per-call work."""

    def __init__(self, commit: Callable[[Batch], None], reactor: Any, name: str) -> None:
        self._commit = commit
        self._reactor = reactor
        self._queue: queue.SimpleQueue[tuple[Batch, Callable[..., None], Callable[..., None],
                                             tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, batch: Batch, done: Callable[..., None], failed: Callable[[Failure], None],
               args: tuple[Any, ...]) -> None:
        """Commit `batch`; then `done(None, *args)` or `failed(failure)` runs in the reactor."""
        self._queue.put((batch, done, failed, args))

    def stop(self) -> None:
        """Finish the commits already submitted, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _loop(self) -> None:
        call = self._reactor.callFromThread
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch, done, failed, args = item
            try:
                self._commit(batch)
            except BaseException:  # any failure stops the shard, in the reactor thread
                call(failed, Failure())
            else:
                call(done, None, *args)


@dataclass(frozen=True)
class DumpSettings:
    """Where DUMPLOG files go and how to open a store connection for the dump thread."""

    dump_dir: Path
    open_store: Callable[[], Store]


class ShardService:
    """The engine of one shard, driven by batches of messages from the gateway."""

    def __init__(self, index: int, count: int, engine: Engine, store: Store, quotes: Any,
                 send: Callable[[tuple[Any, ...]], None], dumps: DumpSettings, *,
                 reactor: Any, sweep_interval: float = 2.0, clock: Callable[[], int] = now_ms,
                 crash_at: str | None = None, commit_thread: bool = True) -> None:
        self.index = index
        self.count = count
        self.engine = engine
        self.store = store
        self.quotes = quotes
        self._send = send
        self._dumps = dumps
        self._reactor = reactor
        self._clock = clock
        self._crash_at = crash_at
        self._loaded: set[str] = set()
        self._parked: dict[str, deque[tuple[int, int, Any]]] = {}
        self._replies: list[tuple[int, Reply]] = []
        self._after_commit: list[tuple[int, DumpRequest]] = []
        self._flush_call: Any = None
        self._committing = False
        self._flush_again = False
        self._commit_thread: CommitThread | None = None
        if commit_thread:
            self._commit_thread = CommitThread(store.commit_batch, reactor,
                                               name=f"shard-{index}-commit")
        self._expiry_call: Any = None
        self._expiry_at: int | None = None
        self._txn_next = 0
        self._txn_end = 0
        self.commands = 0
        self.batches = 0
        self.errors: Counter[Any] = Counter()  # by error code, text made only for STATS
        self._sweep = LoopingCall(self.sweep)
        self._sweep.clock = reactor
        self._sweep_interval = sweep_interval
        self._sweeping = False

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Adopt this shard's accounts that hold pending entries or triggers, start the timers."""
        if self._commit_thread is not None:
            self._commit_thread.start()
        for acct in self.store.load_active_accounts():
            if shard_of(acct.user, self.count) == self.index and acct.user not in self._loaded:
                self.engine.load(acct)
                self._loaded.add(acct.user)
        self._sweep.start(self._sweep_interval, now=False)
        # Entries that expired while the shard was down are released at once.
        self._expire()

    def stop(self) -> None:
        if self._commit_thread is not None:
            self._commit_thread.stop()
        if self._sweep.running:
            self._sweep.stop()
        for call in (self._flush_call, self._expiry_call):
            if call is not None and call.active():
                call.cancel()

    # --- messages from the gateway ------------------------------------------------------------

    def on_batch(self, messages: list[tuple[Any, ...]]) -> None:
        for msg in messages:
            kind = msg[0]
            if kind == "C":
                self._command(msg[1], msg[2], msg[3])
            elif kind == "O":
                self._open_account(msg[1], msg[2], msg[3])
            elif kind == "S":
                self._send(("S", msg[1], self.stats()))
        self._schedule_flush()

    def _command(self, req_id: int, now: int, line: str) -> None:
        self.commands += 1
        try:
            cmd = parse_request(line)
        except ProtocolError as exc:
            self._reject(req_id, now, exc)
            return
        if not cmd.TRADING:
            self._reply(req_id, Reply(cmd.txn, cmd.NAME, False, None, ErrorCode.BAD_REQUEST,
                                      f"{cmd.NAME} is not a trading command"))
            return
        key = cmd.user if cmd.user is not None else _ALL_USERS
        queue = self._parked.get(key)
        if queue is not None:
            queue.append((req_id, now, cmd))
            return
        self._run(key, req_id, now, cmd)

    def _reject(self, req_id: int, now: int, exc: ProtocolError) -> None:
        user = exc.user
        if user is not None:
            self._ensure_loaded(user)
        if exc.txn is None:
            reply = Reply(None, exc.command, False, None, exc.code, exc.message)
        else:
            reply = self.engine.reject(exc.command, user, exc.txn, now, exc.code, exc.message)
        self._reply(req_id, reply)

    def _open_account(self, req_id: int, now: int, user: str) -> None:
        self._ensure_loaded(user)
        created = self.engine.open_account(user, now)
        self._reply(req_id, Reply(None, "LOGIN", True, {"user": user, "created": created}))

    # --- running commands in per-user order ---------------------------------------------------

    def _run(self, key: str, req_id: int, now: int, cmd: c.TradingCommand,
             quote: PriceQuote | None = None) -> bool:
        """Execute; returns False when the command had to park its user's queue."""
        if cmd.user is not None:
            self._ensure_loaded(cmd.user)
        outcome = self.engine.execute(cmd, now, quote)
        if type(outcome) is NeedQuote:
            cached = self.quotes.peek(outcome.symbol, now)
            if cached is not None:
                outcome = self.engine.execute(cmd, now, cached)
        if type(outcome) is NeedQuote:
            # Park first: a cached quote calls back at once, and its callback un-parks.
            self._parked[key] = deque()
            d = self.quotes.get(outcome.symbol, outcome.user, now)
            d.addCallbacks(self._quote_arrived, self._quote_failed,
                           callbackArgs=(key, req_id, now, cmd),
                           errbackArgs=(key, req_id, now, cmd))
            return key not in self._parked
        if type(outcome) is DumpRequest:
            self._parked[key] = deque()
            self._after_commit.append((req_id, outcome))
            self._schedule_flush()
            return False
        self._reply(req_id, outcome)
        return True

    def _quote_arrived(self, quote: PriceQuote, key: str, req_id: int, now: int,
                       cmd: c.TradingCommand) -> None:
        outcome = self.engine.execute(cmd, now, quote)
        if type(outcome) is NeedQuote:  # the quote could not back it (too old): no retry loop
            outcome = self.engine.execute(cmd, now, quote_unavailable())
        self._reply(req_id, outcome)
        self._resume(key)

    def _quote_failed(self, failure: Failure, key: str, req_id: int, now: int,
                      cmd: c.TradingCommand) -> None:
        log.info("quote for %s failed: %s", cmd.line(), failure.getErrorMessage())
        self._reply(req_id, self.engine.execute(cmd, now, quote_unavailable()))
        self._resume(key)

    def _resume(self, key: str) -> None:
        """The user's command in progress finished: run the waiting ones until one parks again."""
        queue = self._parked.pop(key, None)
        while queue:
            req_id, now, cmd = queue.popleft()
            if not self._run(key, req_id, now, cmd):
                self._parked[key].extend(queue)
                break
        self._schedule_flush()

    def _ensure_loaded(self, user: str) -> None:
        if user in self._loaded:
            return
        self._loaded.add(user)
        if user not in self.engine.accounts:
            acct = self.store.load_account(user)
            if acct is not None:
                self.engine.load(acct)

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
        """Commit everything executed since the last flush, then release its replies.

        One commit runs at a time, on the commit thread, while the reactor keeps executing
        commands; what accumulates meanwhile goes out in the next commit (group commit), so an
        fsync never stalls the shard.
        """
        if self._committing:
            self._flush_again = True
            return
        if not self._replies and not self._after_commit and not self.engine.has_effects():
            return
        effects = self.engine.drain()
        if self._crash_at == "after_apply":
            os._exit(137)
        replies, self._replies = self._replies, []
        dumps, self._after_commit = self._after_commit, []
        batch = Batch(effects.accounts, effects.transactions, effects.events, effects.replies)
        if not batch:
            self._release(replies, effects.pushes, dumps)
            return
        self._committing = True
        if self._commit_thread is not None:
            self._commit_thread.submit(batch, self._committed, self._commit_failed,
                                       (replies, effects.pushes, dumps))
            return
        try:
            self.store.commit_batch(batch)
        except Exception:
            self._commit_failed(Failure())
            return
        self._committed(None, replies, effects.pushes, dumps)

    def _committed(self, _: None, replies: list[tuple[int, Reply]],
                   pushes: list[tuple[str, Any]], dumps: list[tuple[int, DumpRequest]]) -> None:
        self.batches += 1
        self._committing = False
        if self._crash_at == "after_commit":
            os._exit(137)
        self._release(replies, pushes, dumps)
        if self._flush_again:
            self._flush_again = False
            self.flush()

    def _commit_failed(self, failure: Failure) -> None:
        # The engine already changed memory the store does not have: stop rather than
        # acknowledge; the gateway restarts the shard, which recovers from the store.
        log.error("commit failed; shard %d stops: %s", self.index, failure.getTraceback())
        os._exit(70)

    def _release(self, replies: list[tuple[int, Reply]], pushes: list[tuple[str, Any]],
                 dumps: list[tuple[int, DumpRequest]]) -> None:
        send = self._send
        if replies:
            # One message for all replies: their ids and their lines joined, so the gateway
            # unpickles two objects instead of a tuple per reply.
            send(("R", [r[0] for r in replies],
                  "\n".join([r[1].to_json() for r in replies]).encode()))
        for user, event in pushes:
            send(("E", user, event.to_json()))
        for req_id, request in dumps:
            self._start_dump(req_id, request)
        self._schedule_expiry()

    # --- DUMPLOG ------------------------------------------------------------------------------

    def _start_dump(self, req_id: int, request: DumpRequest) -> None:
        from server.audit.dumpfile import dump_events, render_events

        settings = self._dumps

        def work() -> dict[str, Any]:
            store = settings.open_store()
            try:
                events = store.iter_events(request.user)
                if request.filename == "-" and request.user is not None:
                    xml = render_events(events)
                    return {"xml": xml, "events": xml.count("\n\t<") if xml else 0}
                result = dump_events(events, settings.dump_dir, request.filename)
                return {"path": str(result.path), "events": result.events}
            finally:
                store.close()

        key = request.user if request.user is not None else _ALL_USERS

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
        if self.engine.expire_due(self._clock()):
            self._schedule_flush()
        else:
            self._schedule_expiry()

    def sweep(self) -> Deferred[None] | None:
        """Check every symbol with an armed trigger against one usable quote, fire what crosses."""
        if self._sweeping:
            return None
        armed = self.engine.armed_symbols()
        if not armed:
            return None
        self._sweeping = True
        now = self._clock()
        d = self.quotes.get_many(list(armed), armed, now)

        def fire(quotes: dict[str, PriceQuote]) -> None:
            at = self._clock()
            for quote in quotes.values():
                fired = self.engine.fire_triggers(quote, at, self._next_txn)
                if not fired and quote.fresh:
                    self.engine.audit_quote_hit(quote, at, self._next_txn())
            self._schedule_flush()

        def finished(result: Any) -> None:
            self._sweeping = False
            if isinstance(result, Failure):
                log.warning("trigger sweep failed: %s", result.getErrorMessage())

        d.addCallback(fire)
        d.addBoth(finished)
        return d

    def _next_txn(self) -> int:
        if self._txn_next >= self._txn_end:
            self._txn_next = self.store.reserve_txns(100)
            self._txn_end = self._txn_next + 100
        txn = self._txn_next
        self._txn_next += 1
        return txn

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
            "queue_depth": sum(len(q) + 1 for q in self._parked.values()),
            "users_loaded": len(self.engine.accounts),
            "quotes": quote_stats,
            "cache_hit_rate": round(hits / lookups, 4) if lookups else None,
            "errors": {str(code): n for code, n in self.errors.items()},
        }
