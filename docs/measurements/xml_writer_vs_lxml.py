"""Side by side: DUMPLOG rendered by xml_writer.write_log (f-strings) and by lxml's etree.xmlfile.

Run from the repository root: `python docs/measurements/xml_writer_vs_lxml.py [EVENTS] [ROUNDS]`.
Both writers get the same synthetic events (final_2019's mix of kinds) in the same process, in
alternating rounds; each round prints the CPU seconds of each. The lxml writers produce the same
elements byte for byte (only the XML declaration differs), so the comparison is like for like.
"""

from __future__ import annotations

import gc
import random
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import BinaryIO

from lxml import etree

from server.audit.xml_writer import _money, escape_text, write_log
from server.shards.audit_events import (
    ACCOUNT_TRANSACTION,
    DEBUG_EVENT,
    ERROR_EVENT,
    QUOTE_SERVER,
    USER_COMMAND,
    AuditEvent,
)

T0 = 1167631200000
CRYPTOKEY = "IRrR7UeTO35kSWUgG0QJKmB35sL27FKM7AVhP5qpjCgmWQeXFJs35g=="
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_UNMARKUP = {"&amp;": "&", "&lt;": "<", "&gt;": ">"}


def synthetic_events(count: int, seed: int = 7) -> list[AuditEvent]:
    """A userCommand per txn, then a quoteServer (50 %), accountTransaction (30 %) or error."""
    rng = random.Random(seed)
    users = [f"user{i:04d}" for i in range(1200)]
    symbols = [f"S{i:02d}" for i in range(60)]
    commands = ["ADD", "BUY", "COMMIT_BUY", "SELL", "COMMIT_SELL", "QUOTE", "SET_BUY_AMOUNT"]
    events: list[AuditEvent] = []
    txn = 0
    while len(events) < count:
        txn += 1
        user, symbol, command = rng.choice(users), rng.choice(symbols), rng.choice(commands)
        events.append(AuditEvent(USER_COMMAND, txn, 0, T0 + txn, "gateway", user, command,
                                 symbol, rng.randrange(1, 10**6)))
        r = rng.random()
        if r < 0.5:
            events.append(AuditEvent(QUOTE_SERVER, txn, 1, T0 + txn, "shard-1", user,
                                     symbol=symbol, price=rng.randrange(1, 10**5),
                                     quote_time=T0 + txn - 3, cryptokey=CRYPTOKEY))
        elif r < 0.8:
            events.append(AuditEvent(ACCOUNT_TRANSACTION, txn, 1, T0 + txn, "shard-1", user,
                                     funds=rng.randrange(1, 10**6), action="remove"))
        else:
            events.append(AuditEvent(ERROR_EVENT, txn, 1, T0 + txn, "shard-1", user, command,
                                     symbol, message="no pending BUY"))
    return events[:count]


def _visible(text: str) -> str:
    """lxml escapes markup itself but refuses control characters: those stay escape_text's."""
    if _CONTROLS.search(text) is None:
        return text
    return re.sub("&amp;|&lt;|&gt;", lambda m: _UNMARKUP[m.group()], escape_text(text))


_visible_cache: dict[str, str] = {}


def _visible_cached(text: str) -> str:
    """_visible once per distinct text, as xml_writer caches its escapes (ids repeat)."""
    done = _visible_cache.get(text)
    if done is None:
        done = _visible_cache[text] = _visible(text)
    return done


def _maybe(render: Callable[[int], str], value: int | None) -> str | None:
    return None if value is None else render(value)


def _fields(e: AuditEvent) -> list[tuple[str, str]]:
    """The event's child elements in schema order, as xml_writer renders them."""
    kind, txn, _, ts, server, user, command, symbol, funds, filename, price, quote_time, \
        cryptokey, action, message = e
    out = [("timestamp", str(ts)), ("server", _visible_cached(server)),
           ("transactionNum", str(txn))]
    if kind == QUOTE_SERVER:
        optional = [("price", _maybe(_money, price)), ("stockSymbol", symbol),
                    ("username", user), ("quoteServerTime", _maybe(str, quote_time)),
                    ("cryptokey", cryptokey)]
    elif kind == ACCOUNT_TRANSACTION:
        optional = [("action", action), ("username", user), ("funds", _maybe(_money, funds))]
    else:
        optional = [("command", command), ("username", user), ("stockSymbol", symbol),
                    ("filename", filename), ("funds", _maybe(_money, funds))]
        if kind in (ERROR_EVENT, DEBUG_EVENT):
            optional.append(("errorMessage" if kind == ERROR_EVENT else "debugMessage", message))
    out += [(tag, _visible_cached(text)) for tag, text in optional if text is not None]
    return out


def lxml_elements(events: Iterable[AuditEvent], out: BinaryIO) -> int:
    """lxml's documented incremental shape: build each event's element, xf.write() it."""
    element, sub_element = etree.Element, etree.SubElement
    count = 0
    with etree.xmlfile(out, encoding="utf-8", buffered=True) as xf:
        xf.write_declaration()
        with xf.element("log"):
            xf.write("\n")
            for e in events:
                parent = element(e.kind)
                parent.text = "\n\t\t"
                child = parent
                for tag, text in _fields(e):
                    child = sub_element(parent, tag)
                    child.text = text
                    child.tail = "\n\t\t"
                child.tail = "\n\t"
                parent.tail = "\n"
                xf.write("\t")
                xf.write(parent)
                count += 1
    return count


def lxml_contexts(events: Iterable[AuditEvent], out: BinaryIO) -> int:
    """lxml's other shape: an xf.element() context per element, text through xf.write()."""
    count = 0
    with etree.xmlfile(out, encoding="utf-8", buffered=True) as xf:
        xf.write_declaration()
        with xf.element("log"):
            write, element = xf.write, xf.element
            write("\n")
            for e in events:
                write("\t")
                with element(e.kind):
                    for tag, text in _fields(e):
                        write("\n\t\t")
                        with element(tag):
                            write(text)
                    write("\n\t")
                write("\n")
                count += 1
    return count


def cpu_seconds(writer: Callable[[Iterable[AuditEvent], BinaryIO], int],
                events: list[AuditEvent], path: str) -> float:
    gc.collect()
    with open(path, "wb", buffering=1 << 20) as out:
        started = time.process_time()
        writer(events, out)
        out.flush()
        return time.process_time() - started


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    events = synthetic_events(count)
    writers = {"f-strings": write_log, "lxml elements": lxml_elements,
               "lxml contexts": lxml_contexts}
    started = time.process_time()
    for e in events:
        _fields(e)
    print(f"the lxml writers' field extraction alone: {time.process_time() - started:.2f} s")
    for r in range(rounds):
        figures = {name: cpu_seconds(w, events, f"/tmp/dumplog-{i}.xml")
                   for i, (name, w) in enumerate(writers.items())}
        print(f"round {r}, {count:,} events, CPU s: "
              + ", ".join(f"{name} {s:.2f}" for name, s in figures.items()), flush=True)


if __name__ == "__main__":
    main()
