"""Fuzzed request lines over the real socket, and the check each one must pass.

A line goes out on an operator connection; exactly one reply must come back (the next reply must
then be the DISPLAY_SUMMARY asked right after it), never `internal`; and when the reply is an
error, the fuzzed user's summary must be exactly what it was before.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field

from protocol.commands import TRADING_NAMES
from protocol.errors import ErrorCode
from tests.support.lines import LineClient

KNOWN_CODES = {str(c) for c in ErrorCode} - {"internal"}
#: Lines that would change this connection's session (log in as someone, close it) are not sent:
#: the fuzzing connection must stay an operator connection to check state.
SESSION_CHANGING = re.compile(
    rb"^\s*(\[[^\]]*\]\s*)?(\$\s)?\s*(auth|login|quit|passwd|watch)\s*(,|$)", re.I)
FUZZED_NAMES = sorted(TRADING_NAMES - {"DUMPLOG"}) + ["PING", "STATS"]

EDGE_AMOUNTS = ["-5", "0", "0.00", "NaN", "nan", "inf", "-inf", "1e309", "1e3", "1_000",
                "\u0661\u0660\u0660", "\uff11\uff10", "10.001", "", " ", "9" * 5000,
                "99999999999", "0x10", "+5", "5.", ".5", "5,00", "\u00b2"]
EDGE_NAMES = ["vic$tim", "vic.tim", "vic\x00tim", "vic\x07tim", "\x1b[31mred", "<victim>",
              "vic]]>tim", "v" * 33, "", " ", "vic tim", "vïctim", "../victim", "victim\x00"]
EDGE_SYMBOLS = ["abc", "ABCD", "A$C", "A.C", "A\x00C", "<A>", "]]>", "", "\u00c5BC", "A C", "1AB"]
INTERESTING = [b"$", b".", b"\x00", b"\x01", b"\x1f", b"\x7f", b"<", b"]]>", b",", b",,", b"-",
               b"NaN", b"inf", b"1e309", b"_", "\u0661".encode(), b"\xff", b"\xc3", b" ", b"[",
               b"]", b"\r", b"9" * 20, "\u202e".encode(), b"&amp;", b"\\", b"'", b'"']


@dataclass
class FuzzTally:
    """What the fuzzing saw."""

    lines: int = 0
    skipped: int = 0
    codes: Counter = field(default_factory=Counter)
    state_changes_on_error: list[str] = field(default_factory=list)
    wrong_reply_counts: list[str] = field(default_factory=list)

    def merge(self, other: FuzzTally) -> None:
        self.lines += other.lines
        self.skipped += other.skipped
        self.codes.update(other.codes)
        self.state_changes_on_error += other.state_changes_on_error
        self.wrong_reply_counts += other.wrong_reply_counts


class FuzzSession:
    """One operator connection fuzzing on behalf of one user."""

    def __init__(self, host: str, port: int, token: str, user: str) -> None:
        self.host, self.port, self.token, self.user = host, port, token, user
        self.tally = FuzzTally()
        self.conn = self._connect()
        assert self.conn.ask(f"ADD,{user},1000.00")["ok"]
        self.before = self._summary()

    def _connect(self) -> LineClient:
        conn = LineClient(self.host, self.port, timeout=30)
        assert conn.ask(f"AUTH,{self.token}")["ok"]
        return conn

    def _summary(self) -> dict:
        reply = self.conn.ask(f"DISPLAY_SUMMARY,{self.user}")
        assert reply.get("cmd") == "DISPLAY_SUMMARY" and reply.get("ok"), reply
        return reply["result"]

    def _settle(self, summary: dict) -> dict:
        """Cancel what a successful fuzzed line left pending (it would expire and change state
        on its own); the summary afterwards."""
        for _ in summary["pending_buys"]:
            self.conn.ask(f"CANCEL_BUY,{self.user}")
        for _ in summary["pending_sells"]:
            self.conn.ask(f"CANCEL_SELL,{self.user}")
        return self._summary() if summary["pending_buys"] or summary["pending_sells"] else summary

    def check(self, line: bytes) -> None:
        line = line.replace(b"\n", b" ")
        if SESSION_CHANGING.match(line):
            self.tally.skipped += 1
            return
        self.tally.lines += 1
        reply = self.conn.ask(line)
        if "event" in reply:
            reply = self.conn.reply()  # a pushed event may come first; it is not the reply
        if "ok" not in reply:
            self.tally.wrong_reply_counts.append(f"{line[:80]!r}: {reply}")
            return
        code = "ok" if reply["ok"] else reply["error"]["code"]
        self.tally.codes[code] += 1
        after_reply = self.conn.ask(f"DISPLAY_SUMMARY,{self.user}")
        if after_reply.get("cmd") != "DISPLAY_SUMMARY":  # a second reply to the fuzzed line
            self.tally.wrong_reply_counts.append(f"{line[:80]!r}: then {after_reply}")
            after_reply = self.conn.reply()
        after = after_reply["result"]
        if not reply["ok"] and after != self.before:
            self.tally.state_changes_on_error.append(f"{line[:80]!r} -> {code}")
        self.before = self._settle(after) if reply["ok"] else after

    def finish(self) -> None:
        """No reply may be left over: PING is answered next, and nothing after it."""
        pong = self.conn.ask("PING")
        if pong.get("cmd") != "PING":
            self.tally.wrong_reply_counts.append(f"left over: {pong}")
        if not self.conn.closed_by_server(within=0.5) and self.conn._buf.strip():
            self.tally.wrong_reply_counts.append(f"left over: {self.conn._buf[:200]!r}")
        self.conn.close()


def seed_lines(user: str, corpus: list[str]) -> list[bytes]:
    """Valid lines to mutate: workload lines moved to `user`, plus the edge values in place."""
    lines = [re.sub(r"^(\w+),[^,]*", lambda m: f"{m.group(1)},{user}", t, count=1)
             for t in corpus]
    for amount in EDGE_AMOUNTS:
        lines.append(f"ADD,{user},{amount}")
        lines.append(f"BUY,{user},ABC,{amount}")
    for name in EDGE_NAMES:
        lines.append(f"ADD,{name},10.00")
    for symbol in EDGE_SYMBOLS:
        lines.append(f"SET_BUY_AMOUNT,{user},{symbol},10.00")
    return [line.encode() for line in lines]


def mutate(line: bytes, rng: random.Random) -> bytes:
    """One to three random mutations of `line`."""
    data = bytearray(line)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(9)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[at:at] = rng.choice(INTERESTING)
        elif op == 2 and data:
            del data[at:at + rng.randint(1, 6)]
        elif op == 3:
            fields = bytes(data).split(b",")
            fields.insert(rng.randrange(len(fields) + 1), rng.choice(fields))
            data = bytearray(b",".join(fields))
        elif op == 4:
            fields = bytes(data).split(b",")
            i, j = rng.randrange(len(fields)), rng.randrange(len(fields))
            fields[i], fields[j] = fields[j], fields[i]
            data = bytearray(b",".join(fields))
        elif op == 5:
            data = bytearray(bytes(data).swapcase() if rng.random() < 0.5 else data.lower())
        elif op == 6:
            txn = rng.choice([b"0", b"-1", b"1", b"2", b"9" * 25, b"abc", b"", b"1 2",
                              str(rng.randrange(1, 10**12)).encode()])
            data = bytearray(b"[" + txn + b"] " + bytes(data))
        elif op == 7:
            data = data[:at]
        else:
            data = bytearray(bytes(data) * rng.choice([2, 40, 200]))
    return bytes(data)
