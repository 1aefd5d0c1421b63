"""The flags that tune a shard (quotes, Redis, store, sweeps, snapshots, logging): one definition
for `daytrade up`, whose local shards take them, and `daytrade shard`, a shard on its own."""

from __future__ import annotations

import argparse

from server.cli_args import above_zero, at_least, url
from server.quotes.legacy_client import (
    DEFAULT_HEDGE_AFTER,
    DEFAULT_HEDGE_BUDGET,
    DEFAULT_MAX_REQUESTS,
    HEDGE_RESERVE,
)
from server.shards.snapshots import SNAPSHOT_EVERY


def add_shard_flags(ap: argparse.ArgumentParser, *, redis_help: str, mongo_help: str) -> None:
    """Add the shard-tuning flags to `ap`; `check_shard_flags` checks them together."""
    ap.add_argument("--quote-timeout", type=above_zero, default=5.0, metavar="S",
                    help="seconds per quote fetch")
    ap.add_argument("--quote-hedge-after", type=at_least(float, 0.0), default=DEFAULT_HEDGE_AFTER,
                    metavar="S",
                    help="seconds without a reply before a quote fetch sends its next, identical "
                         "request (hedging; the legacy server's fast replies take ~10 ms on an "
                         "idle machine, its slow ones 1-4 s)")
    ap.add_argument("--quote-max-requests", type=at_least(int, 1), default=DEFAULT_MAX_REQUESTS,
                    metavar="N", help="requests per quote fetch at most, hedges included")
    ap.add_argument("--quote-hedge-budget", type=at_least(float, 1.0),
                    default=DEFAULT_HEDGE_BUDGET, metavar="R",
                    help="quote requests per fetch on average at most, hedges included: a shard "
                         f"sends no hedge that would take it over R x fetches + {HEDGE_RESERVE:g}")
    ap.add_argument("--quote-renew-ahead", type=at_least(float, 0.0), default=15.0, metavar="S",
                    help="a quote still in use is renewed in the background when between S/3 "
                         "and S seconds of its 60 remain (spread per quote), so that commands "
                         "do not wait for it to be fetched again; 0: never (must exceed "
                         "--quote-timeout)")
    ap.add_argument("--redis-url", type=url("redis", "rediss", "unix"), metavar="URL",
                    help=redis_help)
    ap.add_argument("--no-redis", action="store_true", help="run without any Redis")
    ap.add_argument("--mongo-url", type=url("mongodb", "mongodb+srv"), metavar="URL",
                    help=mongo_help)
    ap.add_argument("--sweep-interval", type=at_least(float, 0.05), default=2.0, metavar="S",
                    help="seconds between trigger sweeps")
    ap.add_argument("--snapshot-interval", type=at_least(float, 0.05), default=30.0, metavar="S",
                    help="the most seconds between a shard's background snapshots (one is also "
                         "taken once its journal has grown by --snapshot-every inputs); a "
                         "restart replays the journal written since the newest one")
    ap.add_argument("--snapshot-every", type=at_least(int, 1), default=SNAPSHOT_EVERY, metavar="N",
                    help="journaled inputs (about one per command) between a shard's snapshots; "
                         "a restart after a crash replays at most about this many")
    ap.add_argument("--log-level", default="WARNING", type=str.upper,
                    choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])


def check_shard_flags(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What the shard-tuning flags cannot be together (a usage error through `ap`)."""
    if args.no_redis and args.redis_url:
        ap.error("--no-redis and --redis-url exclude each other")
    if 0 < args.quote_renew_ahead <= args.quote_timeout:
        # A command that joins a renewal in flight must get a quote still usable when it ends.
        ap.error("--quote-renew-ahead must be 0 or more than --quote-timeout")
