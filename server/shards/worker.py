"""The shard worker process: its own reactor, engine, journal and quote cache.

Started by the gateway with `multiprocessing` (spawn) and one end of a socketpair; it exits when
that socket closes, so a gateway killed with SIGKILL leaves no orphan shards behind. It recovers
its state from its journal before it reads the gateway's first message.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.quotes.legacy_client import (
    DEFAULT_HEDGE_AFTER,
    DEFAULT_HEDGE_BUDGET,
    DEFAULT_MAX_REQUESTS,
)
from server.shards.snapshots import SNAPSHOT_EVERY

if TYPE_CHECKING:
    from server.shards.service import ShardService

log = logging.getLogger("daytrade.shard")


@dataclass(frozen=True)
class ShardConfig:
    """Everything a shard process needs to know (picklable: it crosses the spawn)."""

    index: int
    count: int
    store: str  # a data directory, a sqlite:/// URL or a mongodb:// URL (server/store/factory)
    dump_dir: str
    quote_host: str
    quote_port: int
    redis_url: str | None = None
    quote_timeout: float = 5.0
    quote_hedge_after: float = DEFAULT_HEDGE_AFTER
    quote_max_requests: int = DEFAULT_MAX_REQUESTS
    quote_hedge_budget: float = DEFAULT_HEDGE_BUDGET
    sweep_interval: float = 2.0
    quote_renew_ahead: float = 0.0  # seconds; 0: quotes are fetched only when a command needs one
    snapshot_interval: float = 30.0
    snapshot_every: int = SNAPSHOT_EVERY
    crash_at: str | None = None  # "after_apply" | "after_commit": fault injection for tests
    log_level: str = "WARNING"
    extra: dict[str, str] = field(default_factory=dict)


#: Allocations between young-generation collections in a shard (CPython's default is 700). Each
#: collection walks what survived since the last one (transaction records included, until it
#: untracks them): at 50,000 that took 30-60 ms of a shard's CPU every ~10 s at 15,000 commands/s;
#: at 5,000 a parser + engine replay of final_2019 pauses 3.4 ms on average and the collector's
#: share stays under 0.5 us a command (0.2 us at 50,000).
GC_YOUNG_THRESHOLD = 5_000


def start_service(service: ShardService) -> None:
    """Recover and start the service, then tune the collector for a heap of long-lived records.

    A shard keeps every user's transaction records and account state (millions of objects on
    the final workload). When the records were objects the collector tracks, its full collections
    took up to 222 ms, stalling every user of the shard; they are plain tuples now, which it
    stops tracking (`Account.record`). Recovery makes the state with the collector off (replay
    builds no garbage cycles worth chasing); what is loaded is then frozen out of collection,
    and young collections run every GC_YOUNG_THRESHOLD allocations.
    """
    gc.disable()
    try:
        service.start()
    finally:
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        gc.enable()


def open_service(config: ShardConfig, reactor: Any, send: Callable[[Any], None], *,
                 every_journal: Callable[[], bool] = lambda: True) -> ShardService:
    """The shard's service on its journal and quote cache, not started (nothing recovered)."""
    from server.quotes.cache import QuoteCache
    from server.quotes.legacy_client import LegacyQuoteClient
    from server.shards.engine import Engine
    from server.shards.service import DumpSettings, ShardService
    from server.shards.threadname import set_native_name
    from server.store.factory import open_journal

    set_native_name(f"shard-{config.index}")  # the reactor thread, as top and /proc show it
    journal = open_journal(config.store, config.index)
    client = LegacyQuoteClient(config.quote_host, config.quote_port,
                               timeout=config.quote_timeout,
                               hedge_after=config.quote_hedge_after,
                               max_requests=config.quote_max_requests,
                               hedge_budget=config.quote_hedge_budget, reactor=reactor)
    quotes = QuoteCache(client, config.redis_url, reactor=reactor)
    return ShardService(
        config.index, config.count, Engine(f"shard-{config.index}"), journal, quotes, send,
        DumpSettings(Path(config.dump_dir), lambda shard: open_journal(config.store, shard),
                     every_journal),
        reactor=reactor, sweep_interval=config.sweep_interval,
        snapshot_interval=config.snapshot_interval, snapshot_every=config.snapshot_every,
        renew_ahead_ms=round(config.quote_renew_ahead * 1000), crash_at=config.crash_at)


def run_shard(config: ShardConfig, sock: socket.socket) -> None:
    """Process entry point: serve the gateway over `sock` until it closes."""
    logging.basicConfig(level=config.log_level,
                        format=f"%(asctime)s shard-{config.index} %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway decides when shards stop
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory

    from server.shards.channel import FrameProtocol

    service: ShardService | None = None

    def on_batch(messages: list) -> None:
        assert service is not None
        service.on_batch(messages)

    def on_lost(reason: object) -> None:
        if reactor.running:
            reactor.stop()

    channel = FrameProtocol(on_batch, on_lost, reactor.callLater)
    service = open_service(config, reactor, channel.send)
    journal = service.journal
    reactor.adoptStreamConnection(sock.fileno(), socket.AF_UNIX,
                                  Factory.forProtocol(lambda: channel))
    sock.close()
    reactor.callWhenRunning(start_service, service)
    reactor.run(installSignalHandlers=False)
    service.stop()
    journal.close()
    os._exit(0)  # skip multiprocessing's atexit joins: nothing else to flush
