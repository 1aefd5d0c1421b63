"""The shard worker process: its own reactor, engine, store connection and quote cache.

Started by the gateway with `multiprocessing` (spawn) and one end of a socketpair; it exits when
that socket closes, so a gateway killed with SIGKILL leaves no orphan shards behind.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("daytrade.shard")


@dataclass(frozen=True)
class ShardConfig:
    """Everything a shard process needs to know (picklable: it crosses the spawn)."""

    index: int
    count: int
    store_url: str
    dump_dir: str
    quote_host: str
    quote_port: int
    redis_url: str | None = None
    quote_timeout: float = 5.0
    quote_hedge_after: float = 0.25
    sweep_interval: float = 2.0
    crash_at: str | None = None  # "after_apply" | "after_commit": fault injection for tests
    log_level: str = "WARNING"
    extra: dict[str, str] = field(default_factory=dict)


def run_shard(config: ShardConfig, sock: socket.socket) -> None:
    """Process entry point: serve the gateway over `sock` until it closes."""
    logging.basicConfig(level=config.log_level,
                        format=f"%(asctime)s shard-{config.index} %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway decides when shards stop
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory

    from server.quotes.cache import QuoteCache
    from server.quotes.legacy_client import LegacyQuoteClient
    from server.shards.channel import FrameProtocol
    from server.shards.engine import Engine
    from server.shards.service import DumpSettings, ShardService
    from server.store.factory import open_store

    store = open_store(config.store_url)
    client = LegacyQuoteClient(config.quote_host, config.quote_port,
                               timeout=config.quote_timeout,
                               hedge_after=config.quote_hedge_after, reactor=reactor)
    quotes = QuoteCache(client, config.redis_url, reactor=reactor)
    service: ShardService | None = None

    def on_batch(messages: list) -> None:
        assert service is not None
        service.on_batch(messages)

    def on_lost(reason: object) -> None:
        if reactor.running:
            reactor.stop()

    channel = FrameProtocol(on_batch, on_lost, reactor.callLater)
    service = ShardService(
        config.index, config.count, Engine(f"shard-{config.index}"), store, quotes,
        channel.send,
        DumpSettings(Path(config.dump_dir), lambda: open_store(config.store_url)),
        reactor=reactor, sweep_interval=config.sweep_interval, crash_at=config.crash_at)
    reactor.adoptStreamConnection(sock.fileno(), socket.AF_UNIX,
                                  Factory.forProtocol(lambda: channel))
    sock.close()
    reactor.callWhenRunning(service.start)
    reactor.run(installSignalHandlers=False)
    service.stop()
    store.close()
    os._exit(0)  # skip multiprocessing's atexit joins: nothing else to flush
