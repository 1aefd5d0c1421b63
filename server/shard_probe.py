"""`daytrade shard-probe HOST:PORT`: exit 0 when a remote shard completes the handshake and
answers a ping (a liveness or readiness check that means something); 1, with the reason, when
it does not. A probe never displaces the shard's gateway."""

from __future__ import annotations

import sys
import time
from typing import Any

#: Exit status of a probe that got no good answer.
EXIT_FAILED = 1


def _parser() -> Any:
    from server.cli_args import (
        ArgumentParser,
        HelpFormatter,
        above_zero,
        at_least,
        existing_file,
        host_port,
    )

    ap = ArgumentParser(prog="daytrade shard-probe", description=main.__doc__,
                        formatter_class=HelpFormatter)
    ap.add_argument("address", type=host_port, metavar="HOST:PORT", help="the shard's address")
    ap.add_argument("--cluster-secret", type=existing_file, required=True, metavar="FILE",
                    help="the cluster's secret")
    ap.add_argument("--index", type=at_least(int, 0), required=True, metavar="K",
                    help="the shard index expected there")
    ap.add_argument("--of", type=at_least(int, 1), required=True, metavar="N",
                    help="the shard count expected")
    ap.add_argument("--timeout", type=above_zero, default=5.0, metavar="S",
                    help="seconds for the whole probe")
    ap.add_argument("--tls-ca", metavar="FILE", type=existing_file,
                    help="probe over TLS, trusting this PEM certificate")
    return ap


def probe(reactor: Any, address: tuple[str, int], secret: bytes, index: int, count: int,
          timeout: float, tls_ca: str | None = None) -> Any:
    """A Deferred firing with the ping's round-trip time in ms, or failing with the reason."""
    from twisted.internet.defer import Deferred

    from server.shard_client import ShardClient
    from server.shard_pool import connect_to_shard
    from server.shards.channel import Frame

    done: Deferred[float] = Deferred()
    sent: list[float] = []

    def ready(_max_txn: int) -> None:
        sent.append(time.monotonic())
        channel.send((Frame.PING, 1))

    def on_batch(batch: list[list[Any]]) -> None:
        if not done.called and any(m[0] == Frame.PONG and m[1:] == [1] for m in batch):
            done.callback((time.monotonic() - sent[0]) * 1000)
            channel.transport.loseConnection()

    def lost(reason: Any) -> None:
        if not done.called:
            why = channel.refusal or reason.getErrorMessage()
            done.errback(RuntimeError(why))

    channel = ShardClient(index, count, secret, "probe", on_ready=ready, on_batch=on_batch,
                          on_lost=lost, call_later=reactor.callLater)
    connect_to_shard(reactor, address, channel, lambda reason: lost(reason), tls_ca)
    done.addTimeout(timeout, reactor)
    return done


def main(argv: list[str] | None = None) -> int:
    """Check that a remote shard answers (exit 0) or say why not (exit 1)."""
    ap = _parser()
    args = ap.parse_args(argv)
    from server.shards.handshake import read_secret

    try:
        secret = read_secret(args.cluster_secret)
    except ValueError as exc:
        ap.error(f"argument --cluster-secret: {exc}")
    from twisted.internet import defer, reactor

    host, port = args.address
    where = f"shard {args.index} of {args.of} at {host}:{port}"
    outcome: list[int] = []

    def answered(rtt_ms: float) -> None:
        print(f"{where}: rtt {rtt_ms:.1f} ms", flush=True)
        outcome.append(0)

    def failed(failure: Any) -> None:
        reason = ("no answer in time" if failure.check(defer.TimeoutError, defer.CancelledError)
                  else failure.getErrorMessage())
        print(f"{where}: {reason}", file=sys.stderr, flush=True)
        outcome.append(EXIT_FAILED)

    def run() -> None:
        d = probe(reactor, args.address, secret, args.index, args.of, args.timeout, args.tls_ca)
        d.addCallbacks(answered, failed).addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run()
    return outcome[0] if outcome else EXIT_FAILED
