"""`daytrade shard`: one shard as a network service, for a gateway on another host.

It recovers its journal first and only then listens, so a TCP readiness probe means "recovered".
A second live process for the same shard index on the same data stops with exit status 75: a
lock file guards a data directory, and the journal's unique (shard, seq) key guards the journal
itself (SQLite or MongoDB) against a writer the lock cannot see.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import sys
from pathlib import Path
from typing import IO, Any

from server.shards.service import EXIT_FENCED

log = logging.getLogger("daytrade.shard")


def _parser() -> argparse.ArgumentParser:
    from server.cli_args import (
        ArgumentParser,
        HelpFormatter,
        at_least,
        existing_file,
        host_port,
    )
    from server.shard_flags import add_shard_flags

    ap = ArgumentParser(prog="daytrade shard", description=main.__doc__,
                        formatter_class=HelpFormatter)
    ap.add_argument("--index", type=at_least(int, 0), required=True, metavar="K",
                    help="which shard this is (0 .. N-1)")
    ap.add_argument("--of", type=at_least(int, 1), required=True, metavar="N",
                    help="how many shards the cluster has")
    ap.add_argument("--listen", type=listen_address, required=True, metavar="HOST:PORT",
                    help="address for the gateway to connect to (port 0: any free port, "
                         "printed when listening)")
    ap.add_argument("--data-dir", default="daytrade-data", metavar="DIR",
                    help="this shard's journal (SQLite), its lock file and its DUMPLOG files")
    ap.add_argument("--cluster-secret", type=existing_file, required=True, metavar="FILE",
                    help="the secret the gateway proves it knows (never sent)")
    ap.add_argument("--quote-server", type=host_port, required=True, metavar="HOST:PORT",
                    help="the legacy quote server")
    add_shard_flags(ap, redis_help="the Redis server the shards share for quotes",
                    mongo_help="keep the journal in MongoDB instead of SQLite files in --data-dir")
    ap.add_argument("--tls-cert", metavar="FILE", type=existing_file,
                    help="PEM certificate: the gateway connects over TLS")
    ap.add_argument("--tls-key", metavar="FILE", type=existing_file,
                    help="PEM private key of --tls-cert")
    return ap


def listen_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` to listen on; port 0 picks a free one."""
    from server.cli_args import host_port

    host, sep, port_text = text.rpartition(":")
    if sep and port_text == "0":
        return host_port(f"{host}:1")[0], 0
    return host_port(text)


def lock_shard(data_dir: Path, index: int) -> IO[bytes] | None:
    """Hold the lock file of shard `index` in `data_dir`; None when another process holds it.

    The kernel drops the lock with its holder, so a killed shard never leaves it behind."""
    handle = open(data_dir / f"shard-{index}.lock", "a+b")  # noqa: SIM115 (held for life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n".encode())
    handle.flush()
    return handle


def main(argv: list[str] | None = None) -> int:
    """Serve one shard of a daytrade cluster to the gateway over TCP (`daytrade up --shard`)."""
    ap = _parser()
    args = ap.parse_args(argv)
    if args.index >= args.of:
        ap.error(f"argument --index: shard {args.index} of {args.of} does not exist (0 .. "
                 f"{args.of - 1})")
    from server.shard_flags import check_shard_flags

    check_shard_flags(ap, args)
    if not args.no_redis and not args.redis_url:
        ap.error("give one of --redis-url URL (shared by the shards) or --no-redis")
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    from server.shards.handshake import read_secret

    try:
        secret = read_secret(args.cluster_secret)
    except ValueError as exc:
        ap.error(f"argument --cluster-secret: {exc}")
    data_dir = Path(args.data_dir).resolve()
    try:
        (data_dir / "dumps").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        ap.error(f"argument --data-dir: cannot use {data_dir}: {exc.strerror}")
    prefix = f"daytrade shard {args.index} of {args.of}"
    lock = lock_shard(data_dir, args.index)
    if lock is None:
        print(f"{prefix}: another live process serves shard {args.index} on {data_dir} "
              f"(it holds {data_dir / f'shard-{args.index}.lock'}); this one stops",
              file=sys.stderr)
        return EXIT_FENCED
    logging.basicConfig(level=args.log_level,
                        format=f"%(asctime)s shard-{args.index} %(levelname)s %(message)s")
    security = logging.getLogger("daytrade.security")
    handler = logging.FileHandler(data_dir / "security.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    security.addHandler(handler)
    security.setLevel(logging.INFO)
    try:
        return _serve(args, data_dir, secret, prefix)
    except (RuntimeError, OSError) as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.close()


def _serve(args: argparse.Namespace, data_dir: Path, secret: bytes, prefix: str) -> int:
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    from server.shards.channel import MAX_FRAME
    from server.shards.listener import ShardListener
    from server.shards.worker import ShardConfig, open_service, start_service
    from server.store.factory import has_journal, open_directory
    from server.store.journal_port import PartitionMismatch
    from server.store.legacy import LegacyData, refuse_legacy_data

    location = args.mongo_url or str(data_dir)
    try:
        refuse_legacy_data(location)
        directory = open_directory(location)
        try:
            directory.claim_partitions(args.of)
        finally:
            directory.close()
    except (LegacyData, PartitionMismatch) as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return 2
    quote_host, quote_port = args.quote_server
    config = ShardConfig(index=args.index, count=args.of, store=location,
                         dump_dir=str(data_dir / "dumps"), quote_host=quote_host,
                         quote_port=quote_port, redis_url=args.redis_url,
                         quote_timeout=args.quote_timeout,
                         quote_hedge_after=args.quote_hedge_after,
                         quote_max_requests=args.quote_max_requests,
                         quote_hedge_budget=args.quote_hedge_budget,
                         quote_renew_ahead=args.quote_renew_ahead,
                         sweep_interval=args.sweep_interval,
                         snapshot_interval=args.snapshot_interval,
                         snapshot_every=args.snapshot_every, log_level=args.log_level)
    listener_ref: list[ShardListener] = []
    service = open_service(config, reactor, lambda message: listener_ref[0].send(message),
                           every_journal=lambda: all(has_journal(location, i)
                                                     for i in range(args.of)))
    listener = ShardListener(args.index, args.of, secret, reactor, lambda: service.max_txn,
                             MAX_FRAME)
    listener_ref.append(listener)
    listener.on_batch = service.on_batch
    listener.on_attach = service.ask_again
    start_service(service)  # recovery, before anyone can connect
    host, port_number = args.listen
    try:
        if args.tls_cert:
            from server.tls import listen_tls

            port: Any = listen_tls(reactor, listener, port_number, args.tls_cert, args.tls_key,
                                   host)
        else:
            port = reactor.listenTCP(port_number, listener, interface=host)
    except CannotListenError as exc:
        service.stop()
        service.journal.close()
        print(f"{prefix}: cannot listen on {host}:{port_number}: "
              f"{getattr(exc.socketError, 'strerror', None) or exc.socketError}",
              file=sys.stderr)
        return 1
    address = port.getHost()
    print(f"{prefix} listening on {address.host}:{address.port}"
          f"{' (TLS)' if args.tls_cert else ''}; recovered {service.replayed} journal records",
          flush=True)
    reactor.run()  # until SIGTERM or Ctrl-C
    service.stop()
    service.journal.close()
    print(f"{prefix} stopped", flush=True)
    return 0
