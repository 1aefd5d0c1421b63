"""Battery item 4, bad input over the real socket: Hypothesis and mutation fuzzing of request
lines, the amount, id and symbol edge tables, and DUMPLOG file names that try to leave the dump
directory. Every complete line gets exactly one reply, nothing crashes, an error changes nothing."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.workload import read_workload, shipped
from tests.reliability.figures import record
from tests.reliability.fuzzing import (
    EDGE_AMOUNTS,
    EDGE_NAMES,
    EDGE_SYMBOLS,
    FUZZED_NAMES,
    KNOWN_CODES,
    FuzzSession,
    FuzzTally,
    mutate,
    seed_lines,
)
from tests.reliability.sizes import Size
from tests.support.lines import LineClient
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e


@pytest.fixture
def system(tmp_path):
    with RunningSystem(tmp_path / "data", prices={"ABC": 1000, "DEF": 2500},
                       sweep_interval=3600) as s:
        yield s


def gateway_health(system: RunningSystem) -> tuple[int, int]:
    """(shard restarts, gateway recoveries): both stay 0 when nothing crashed."""
    with LineClient(system.host, system.port) as conn:
        conn.ask(f"AUTH,{system.token}")
        stats = conn.ask("STATS")["result"]
    return sum(s["restarts"] for s in stats["shards"]), stats["gateway"]["recoveries"]


def field_strategy(user: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(user), st.just(user), st.sampled_from(["ABC", "DEF", "XYZ"]),
        st.from_regex(r"[0-9]{1,12}(\.[0-9]{0,4})?", fullmatch=True),
        st.sampled_from(EDGE_AMOUNTS + EDGE_NAMES + EDGE_SYMBOLS),
        st.text(max_size=12), st.text(alphabet=st.characters(max_codepoint=0x7f), max_size=12))


def line_strategy(user: str) -> st.SearchStrategy[bytes]:
    prefix = st.one_of(st.just(""), st.just("$ "),
                       st.integers(-3, 10**13).map(lambda n: f"[{n}] "),
                       st.text(max_size=6).map(lambda t: f"[{t}] "))
    name = st.sampled_from(FUZZED_NAMES).flatmap(
        lambda n: st.sampled_from([n, n.lower(), n.title(), f" {n} "]))
    text_line = st.builds(lambda p, n, fields: p + ",".join([n, *fields]), prefix, name,
                          st.lists(field_strategy(user), max_size=5))
    return st.one_of(text_line.map(lambda s: s.encode("utf-8", "surrogatepass")),
                     st.binary(max_size=64))


def test_fuzzed_lines_get_one_reply_each_and_errors_change_nothing(system, size: Size):
    tally = FuzzTally()
    hypothesis_lines = size.fuzz_lines // 2
    session = FuzzSession(system.host, system.port, system.token, "fz")

    @settings(max_examples=hypothesis_lines, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(line_strategy("fz"))
    def fuzz(line: bytes) -> None:
        session.check(line)

    fuzz()
    session.finish()
    tally.merge(session.tally)

    corpus = [i.text for i in read_workload(shipped("10user.txt"))
              if i.command != "DUMPLOG"][:400]
    per_worker = (size.fuzz_lines - hypothesis_lines) // size.fuzz_workers

    def mutation_worker(index: int, out: list[FuzzTally]) -> None:
        rng = random.Random(f"mutate-{size.name}-{index}")
        user = f"fzm{index}"
        worker = FuzzSession(system.host, system.port, system.token, user)
        seeds = seed_lines(user, corpus)
        for _ in range(per_worker):
            worker.check(mutate(rng.choice(seeds), rng))
        worker.finish()
        out.append(worker.tally)

    results: list[FuzzTally] = []
    threads = [threading.Thread(target=mutation_worker, args=(i, results))
               for i in range(size.fuzz_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == size.fuzz_workers, "a mutation worker failed"
    for result in results:
        tally.merge(result)
    restarts, recoveries = gateway_health(system)
    alive = system.process.poll() is None
    record("bad input/fuzz", f"{tally.lines} fuzzed lines ({hypothesis_lines} Hypothesis, the "
           f"rest mutations; {tally.skipped} session-changing lines not sent): "
           f"{len(tally.wrong_reply_counts)} without exactly one reply, "
           f"{restarts + recoveries + (not alive)} crashes, "
           f"{len(tally.state_changes_on_error)} state changes on error; replies "
           + ", ".join(f"{k} {v}" for k, v in tally.codes.most_common()),
           lines=tally.lines, wrong=len(tally.wrong_reply_counts),
           crashes=restarts + recoveries, changes=len(tally.state_changes_on_error))
    assert alive and restarts == 0 and recoveries == 0
    assert tally.codes["internal"] == 0
    assert set(tally.codes) <= KNOWN_CODES | {"ok"}, tally.codes
    assert not tally.wrong_reply_counts, tally.wrong_reply_counts[:5]
    assert not tally.state_changes_on_error, tally.state_changes_on_error[:5]
    assert tally.lines >= size.fuzz_lines * 0.9


EDGE_COMMANDS = ["ADD,{u},{a}", "BUY,{u},ABC,{a}", "SELL,{u},ABC,{a}", "SET_BUY_AMOUNT,{u},ABC,{a}",
                 "SET_BUY_TRIGGER,{u},ABC,{a}", "SET_SELL_AMOUNT,{u},ABC,{a}",
                 "SET_SELL_TRIGGER,{u},ABC,{a}"]


def edge_lines(user: str) -> list[tuple[str, set[str]]]:
    """(line, acceptable error codes) of the edge tables."""
    lines = []
    for template in EDGE_COMMANDS:
        for amount in EDGE_AMOUNTS:
            codes = {"bad_request"} if len(amount) > 1000 else {"bad_argument"}
            lines.append((template.format(u=user, a=amount), codes))
    for name in EDGE_NAMES:
        for template in ["ADD,{u},10.00", "QUOTE,{u},ABC", "DISPLAY_SUMMARY,{u}",
                         "COMMIT_BUY,{u}", "DUMPLOG,{u},x.xml"]:
            lines.append((template.format(u=name), {"bad_argument"}))
    for symbol in EDGE_SYMBOLS:
        for template in ["QUOTE,{u},{s}", "BUY,{u},{s},10.00", "SET_BUY_AMOUNT,{u},{s},10.00",
                         "CANCEL_SET_SELL,{u},{s}"]:
            lines.append((template.format(u=user, s=symbol), {"bad_argument"}))
    return lines


def test_edge_amounts_ids_and_symbols_are_refused_and_change_nothing(system):
    session = FuzzSession(system.host, system.port, system.token, "edgy")
    assert session.conn.ask("BUY,edgy,ABC,100.00")["ok"]
    assert session.conn.ask("COMMIT_BUY,edgy")["ok"]
    session.before = session._summary()
    wrong = []
    cases = edge_lines("edgy")
    for line, codes in cases:
        reply = session.conn.ask(line.encode("utf-8"))
        if reply.get("ok") is not False or reply["error"]["code"] not in codes:
            wrong.append((line[:60], reply))
        after = session._summary()
        if after != session.before:
            wrong.append((line[:60], "changed the state"))
    session.finish()
    record("bad input/edges", f"{len(cases)} edge-table lines (amounts {EDGE_AMOUNTS[:6]}..., "
           f"ids, symbols): {len(cases) - len(wrong)} refused with the right code and no change")
    assert not wrong, wrong[:5]


DUMP_NAMES = ["../../etc/passwd", "/etc/passwd", "a\x00b", "..", ".", "dir/sub/name.xml",
              "-rf", "x" * 300, "planted.xml", "linked-dir/inner.xml", "abs-link.xml",
              "%2e%2e%2fetc", "~root", "con", "\u202eevil.xml", "a\\..\\b.xml"]


def test_dumplog_names_never_write_outside_the_dump_directory(system, tmp_path):
    dumps = system.data_dir / "dumps"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("precious")
    (dumps / "planted.xml").symlink_to(outside / "precious.txt")
    (dumps / "abs-link.xml").symlink_to("/etc/hostname")
    (dumps / "linked-dir").symlink_to(outside, target_is_directory=True)
    hostname = Path("/etc/hostname").read_bytes() if Path("/etc/hostname").exists() else None
    passwd = Path("/etc/passwd").read_bytes()
    written = []
    with LineClient(system.host, system.port) as op:
        assert op.ask(f"AUTH,{system.token}")["ok"]
        assert op.ask("ADD,dumper,10.00")["ok"]
        for name in DUMP_NAMES:
            for line in (f"DUMPLOG,dumper,{name}", f"DUMPLOG,{name}"):
                reply = op.ask(line.encode("utf-8"))
                if reply["ok"]:
                    path = Path(reply["result"]["path"])
                    assert path.parent == dumps, (name, path)
                    assert not path.is_symlink(), (name, path)
                    written.append(path.name)
                else:
                    assert reply["error"]["code"] == "bad_argument", (name, reply)
    assert sorted(os.listdir(outside)) == ["precious.txt"]
    assert (outside / "precious.txt").read_text() == "precious"
    assert Path("/etc/passwd").read_bytes() == passwd
    if hostname is not None:
        assert Path("/etc/hostname").read_bytes() == hostname
    record("bad input/dumplog", f"{2 * len(DUMP_NAMES)} DUMPLOG lines with hostile names "
           f"(traversal, absolute, NUL, planted file and directory symlinks): "
           f"{len(written)} written, all inside the dump directory, 0 outside, no link followed")
