"""A simulator of the legacy quote server (PROTOCOL.md), deterministic for a seed.

Protocol: one request per connection. The client sends `SYM,user\\n`; after the configured latency
the server answers `price,SYM,user,timestamp_ms,cryptokey\\n` (price in dollars, two decimals) and
closes. A malformed request gets `error,<reason>\\n` and the connection is closed.

Prices: a symbol listed in the `--prices` JSON file ({"SYM": cents}) is quoted at exactly that
price; the file is re-read whenever its mtime, size or inode changes (checked on every reply, a
single stat). Any other symbol gets a price derived from the seed and the symbol that moves every
10 s, within 5 % of that symbol's base price.

Latency `legacy` (mean 0.56 s): 40 of 60 equally likely outcomes answer after 10 ms; the other 20
are late by whole seconds: 11 by 1 s, 6 by 2 s, 2 by 3 s and 1 by 4 s (so 1.01 s ... 4.01 s). Mean:
10 ms + (11*1 + 6*2 + 2*3 + 1*4) / 60 s = 10 ms + 0.55 s. The n-th request's delay is a pure
function of (seed, n), see `legacy_delay_ms`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from protocol.limits import SYMBOL, USER_ID
from protocol.money import format_cents

#: The legacy latency table: (outcomes out of 60, delay in ms).
LEGACY_LATENCY_TABLE: tuple[tuple[int, int], ...] = (
    (40, 10),
    (11, 1_010),
    (6, 2_010),
    (2, 3_010),
    (1, 4_010),
)
_LEGACY_OUTCOMES = sum(weight for weight, _ in LEGACY_LATENCY_TABLE)

#: The simulated price of a symbol without a fixed price changes every this many ms.
PRICE_STEP_MS = 10_000

#: A client that sends no complete request within this many seconds is disconnected.
REQUEST_IDLE_TIMEOUT_S = 30.0

DEFAULT_PORT = 4444

#: Connections the kernel queues for the simulator to accept (Twisted's default is 50). Every
#: quote request is a new connection and shards open hundreds within a few ms when every cached
#: quote expires at once: with 50, the queue overflowed while the simulator waited for a core, the
#: kernel dropped those SYNs and the clients only retried them after the 1 s and 3 s SYN
#: retransmission timeouts (final_2019 at --rate 10000: 202 listen overflows, 4 fetches timed out).
LISTEN_BACKLOG = 1024

_log = Logger()


def _hash_int(*parts: object) -> int:
    text = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def legacy_delay_ms(seed: int, n: int) -> int:
    """The delay in ms of the simulator's n-th request (0-based) under `legacy` latency."""
    outcome = _hash_int("latency", seed, n) % _LEGACY_OUTCOMES
    for weight, delay in LEGACY_LATENCY_TABLE:
        if outcome < weight:
            return delay
        outcome -= weight
    raise AssertionError("unreachable: the table's weights sum to _LEGACY_OUTCOMES")


def simulated_price_cents(seed: int, symbol: str, at_ms: int) -> int:
    """The seeded price in cents of `symbol` at Unix time `at_ms`: a base of 1.00 to 500.00 dollars
    moved by up to 5 % in steps of PRICE_STEP_MS."""
    base = 100 + _hash_int("base", seed, symbol) % 49_901
    # -50 .. +50 per mille, new every step
    wobble = _hash_int("step", seed, symbol, at_ms // PRICE_STEP_MS) % 101 - 50
    return max(1, base + base * wobble // 1000)


def simulated_cryptokey(seed: int, symbol: str, user: str, at_ms: int) -> str:
    """A deterministic base64 key (44 chars, no commas) standing in for the legacy server's."""
    digest = hashlib.sha256(f"key|{seed}|{symbol}|{user}|{at_ms}".encode()).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True, slots=True)
class Latency:
    """How long the simulator waits before answering: `fixed:<ms>` or `legacy`."""

    kind: str  # "fixed" or "legacy"
    ms: int = 0  # the fixed delay; unused for legacy

    @classmethod
    def parse(cls, spec: str) -> Latency:
        """Parse `fixed:<ms>` or `legacy`; raise ValueError otherwise."""
        if spec == "legacy":
            return cls("legacy")
        kind, sep, ms = spec.partition(":")
        if kind == "fixed" and sep and re.fullmatch(r"[0-9]{1,7}", ms):
            return cls("fixed", int(ms))
        raise ValueError(f"latency must be fixed:<ms> or legacy, not {spec!r}")

    def delay_ms(self, seed: int, n: int) -> int:
        """The delay of the n-th request in ms."""
        if self.kind == "legacy":
            return legacy_delay_ms(seed, n)
        return self.ms

    def __str__(self) -> str:
        return "legacy" if self.kind == "legacy" else f"fixed:{self.ms}"


class PriceTable:
    """The `--prices` JSON file of fixed prices in cents, re-read when it changes.

    A file that is missing counts as empty; a file that does not parse as {"SYM": positive int}
    is ignored with a warning and the last good table stays in force.
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self._path = None if path is None else os.fspath(path)
        self._signature: tuple[int, int, int] | None = None
        self._prices: dict[str, int] = {}

    def price_of(self, symbol: str) -> int | None:
        """The fixed price of `symbol` in cents, or None when the table does not list it."""
        if self._path is None:
            return None
        self._refresh()
        return self._prices.get(symbol)

    def _refresh(self) -> None:
        assert self._path is not None
        try:
            st = os.stat(self._path)
        except OSError:
            self._signature = None
            self._prices = {}
            return
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        if signature == self._signature:
            return
        self._signature = signature
        try:
            with open(self._path, encoding="utf-8") as f:
                self._prices = _parse_price_table(json.load(f))
        except (OSError, ValueError) as e:
            _log.warn("ignoring prices file {path}: {error}", path=self._path, error=e)


def _parse_price_table(data: Any) -> dict[str, int]:
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    table: dict[str, int] = {}
    for symbol, cents in data.items():
        if not SYMBOL.fullmatch(symbol):
            raise ValueError(f"bad symbol {symbol!r}")
        if type(cents) is not int or cents <= 0:
            raise ValueError(f"price of {symbol} must be a positive integer of cents")
        table[symbol] = cents
    return table


@dataclass
class QuoteSimulator:
    """The simulator's configuration and its request counter; `listen` serves it over TCP."""

    seed: int = 0
    latency: Latency = field(default_factory=lambda: Latency("fixed", 0))
    prices_file: str | os.PathLike[str] | None = None
    requests_served: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._prices = PriceTable(self.prices_file)
        self._next_request = 0

    def listen(
        self, reactor: IReactorTCP, port: int, interface: str = "127.0.0.1",
        backlog: int = LISTEN_BACKLOG,
    ) -> IListeningPort:
        """Start serving on `interface:port` (0 picks a free port: see `getHost().port`)."""
        return reactor.listenTCP(port, _QuoteServerFactory(self, reactor), backlog=backlog,
                                 interface=interface)

    def reply_line(self, symbol: str, user: str, at_ms: int) -> bytes:
        """The reply to `symbol,user` at Unix time `at_ms`, newline included."""
        price = self._prices.price_of(symbol)
        if price is None:
            price = simulated_price_cents(self.seed, symbol, at_ms)
        key = simulated_cryptokey(self.seed, symbol, user, at_ms)
        self.requests_served += 1
        return f"{format_cents(price)},{symbol},{user},{at_ms},{key}\n".encode("ascii")

    def take_delay_ms(self) -> int:
        """The delay of the next request; each call advances the request counter."""
        n = self._next_request
        self._next_request += 1
        return self.latency.delay_ms(self.seed, n)


class _QuoteServerFactory(Factory):
    def __init__(self, simulator: QuoteSimulator, clock: IReactorTime) -> None:
        self.simulator = simulator
        self.clock = clock

    def buildProtocol(self, addr: object) -> _QuoteRequest:
        return _QuoteRequest(self.simulator, self.clock)


class _QuoteRequest(LineOnlyReceiver):
    """One connection: read one request line, answer it after the latency, close."""

    delimiter = b"\n"
    MAX_LENGTH = 256

    def __init__(self, simulator: QuoteSimulator, clock: IReactorTime) -> None:
        self._simulator = simulator
        self._clock = clock
        self._pending: IDelayedCall | None = None
        self._answered = False

    def connectionMade(self) -> None:
        self._pending = self._clock.callLater(REQUEST_IDLE_TIMEOUT_S, self._idle)

    def connectionLost(self, reason: object = None) -> None:
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None

    def lineReceived(self, line: bytes) -> None:
        if self._answered:
            return  # one request per connection; anything after it is ignored
        self._answered = True
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        request = _parse_request(line)
        if isinstance(request, str):
            self._fail(request)
            return
        delay = self._simulator.take_delay_ms() / 1000
        self._pending = self._clock.callLater(delay, self._reply, *request)

    def lineLengthExceeded(self, line: bytes) -> None:
        if not self._answered:
            self._answered = True
            self._fail("request too long")

    def _reply(self, symbol: str, user: str) -> None:
        self._pending = None
        at_ms = int(self._clock.seconds() * 1000)
        self.transport.write(self._simulator.reply_line(symbol, user, at_ms))
        self.transport.loseConnection()

    def _idle(self) -> None:
        self._pending = None
        self._answered = True
        self._fail("no request")

    def _fail(self, reason: str) -> None:
        self.transport.write(f"error,{reason}\n".encode("ascii"))
        self.transport.loseConnection()


def _parse_request(line: bytes) -> tuple[str, str] | str:
    """(symbol, user), or the reason the request is malformed."""
    if line.endswith(b"\r"):
        line = line[:-1]
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return "request is not ASCII"
    fields = text.split(",")
    if len(fields) != 2:
        return "request must be SYM,user"
    symbol, user = fields
    if not SYMBOL.fullmatch(symbol):
        return "bad symbol"
    if not USER_ID.fullmatch(user):
        return "bad user"
    return symbol, user


def latency_spec(text: str) -> str:
    """An argparse type: a latency spec `Latency.parse` accepts, kept as written."""
    try:
        Latency.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _parser() -> argparse.ArgumentParser:
    from server.cli_args import ArgumentParser, HelpFormatter, at_least, port

    p = ArgumentParser(
        prog="daytrade quotes", description="Run the legacy quote-server simulator.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0: every interface, as in a container)")
    p.add_argument("--port", type=port, default=DEFAULT_PORT, help="TCP port (0 picks a free one)")
    p.add_argument(
        "--latency",
        type=latency_spec,
        default="fixed:0",
        metavar="fixed:<ms>|legacy",
        help="reply delay",
    )
    p.add_argument("--seed", type=at_least(int, 0), default=0, metavar="N",
                   help="seed of prices, keys and latencies")
    p.add_argument("--prices", metavar="FILE", help='JSON {"SYM": cents}, re-read on change')
    p.add_argument("--backlog", type=at_least(int, 1), default=LISTEN_BACKLOG, metavar="N",
                   help="connections queued for accept")
    return p


def main(argv: list[str] | None = None) -> int:
    """`daytrade quotes`: serve the simulator on --host (127.0.0.1) until SIGINT or SIGTERM."""
    args = _parser().parse_args(argv)
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    simulator = QuoteSimulator(seed=args.seed, latency=Latency.parse(args.latency),
                               prices_file=args.prices)
    try:
        port = simulator.listen(reactor, args.port, interface=args.host, backlog=args.backlog)
    except CannotListenError as e:
        print(f"daytrade quotes: cannot listen on {args.host}:{args.port}: {e.socketError}",
              file=sys.stderr)
        return 1
    host = port.getHost()
    print(
        f"quote simulator listening on {host.host}:{host.port} "
        f"(latency {args.latency}, seed {args.seed})",
        flush=True,
    )
    reactor.run()  # its default signal handlers stop it on SIGINT and SIGTERM
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
