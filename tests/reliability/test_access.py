"""Battery item 5, access: acting for another user, operator commands as a user, PASSWD for
another user, password brute force, a txn reused for a different command. All refused, and the
failed logins are in DATA_DIR/security.log (without the passwords tried)."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.reliability.figures import record
from tests.reliability.sizes import Size
from tests.support.lines import LineClient
from tests.support.system import RunningSystem

pytestmark = pytest.mark.e2e

VICTIM_PASSWORD = "victim-secret-1"


@pytest.fixture
def system(tmp_path):
    with RunningSystem(tmp_path / "data", prices={"ABC": 1000}, sweep_interval=3600) as s:
        with LineClient(s.host, s.port) as victim:
            assert victim.ask(f"LOGIN,victim,{VICTIM_PASSWORD}")["ok"]
            assert victim.ask("ADD,victim,500.00")["ok"]
            assert victim.ask("BUY,victim,ABC,100.00")["ok"]
            assert victim.ask("COMMIT_BUY,victim")["ok"]
        yield s


def victim_state(system: RunningSystem) -> dict:
    with LineClient(system.host, system.port) as op:
        op.ask(f"AUTH,{system.token}")
        return op.ask("DISPLAY_SUMMARY,victim")["result"]


FOR_ANOTHER = ["ADD,victim,10.00", "QUOTE,victim,ABC", "BUY,victim,ABC,10.00", "COMMIT_BUY,victim",
               "CANCEL_BUY,victim", "SELL,victim,ABC,10.00", "COMMIT_SELL,victim",
               "CANCEL_SELL,victim", "SET_BUY_AMOUNT,victim,ABC,10.00",
               "SET_BUY_TRIGGER,victim,ABC,5.00", "CANCEL_SET_BUY,victim,ABC",
               "SET_SELL_AMOUNT,victim,ABC,10.00", "SET_SELL_TRIGGER,victim,ABC,20.00",
               "CANCEL_SET_SELL,victim,ABC", "DISPLAY_SUMMARY,victim", "DUMPLOG,victim,v.xml",
               "DUMPLOG,victim,-", "[99999] ADD,victim,10.00", "$ ADD,victim,10.00",
               "add,victim,10.00", " ADD , victim , 10.00 "]
OPERATOR_ONLY = ["DUMPLOG,all.xml", "DUMPLOG,-", "STATS", "WATCH,victim",
                 f"PASSWD,victim,{VICTIM_PASSWORD}x"]


def test_acting_for_others_and_operator_commands_are_refused(system):
    before = victim_state(system)
    codes: Counter = Counter()
    accepted = []
    with LineClient(system.host, system.port) as anon:
        for line in FOR_ANOTHER + OPERATOR_ONLY:
            reply = anon.ask(line)
            codes[reply.get("error", {}).get("code", "ok")] += 1
            if reply.get("ok") or reply["error"]["code"] != "unauthorized":
                accepted.append(("before login", line, reply))
    with LineClient(system.host, system.port) as mallory:
        assert mallory.ask("LOGIN,mallory,mallory-secret")["ok"]
        for line in FOR_ANOTHER + OPERATOR_ONLY:
            reply = mallory.ask(line)
            codes[reply.get("error", {}).get("code", "ok")] += 1
            if reply.get("ok") or reply["error"]["code"] != "forbidden":
                accepted.append(("as mallory", line, reply))
        assert mallory.ask("ADD,mallory,1.00")["ok"]  # still acts for itself
    assert victim_state(system) == before
    with LineClient(system.host, system.port) as conn:  # the victim's password is unchanged
        assert conn.ask(f"LOGIN,victim,{VICTIM_PASSWORD}")["ok"]
    record("access/acting for others", f"{sum(codes.values())} attempts to act for another user "
           f"or use operator commands ({dict(codes)}): {len(accepted)} accepted, the victim's "
           f"state and password unchanged", accepted=len(accepted))
    assert not accepted, accepted[:5]


def test_brute_force_locks_the_id_and_is_logged_without_passwords(system, size: Size):
    outcomes: Counter = Counter()
    tried = 0
    while tried < size.brute_force_attempts:
        with LineClient(system.host, system.port) as attacker:
            for _ in range(5):  # five failures close the connection
                attacker.send(f"LOGIN,victim,guess-{tried:06d}")
                reply = attacker.reply()
                tried += 1
                outcomes[reply.get("error", {}).get("code", "ok")] += 1
                if tried == size.brute_force_attempts:
                    break
    with LineClient(system.host, system.port) as owner:
        locked_out = owner.ask(f"LOGIN,victim,{VICTIM_PASSWORD}")
    log = (system.data_dir / "security.log").read_text()
    logged = log.count("failed LOGIN for victim")
    record("access/brute force", f"{tried} wrong passwords for one id: {dict(outcomes)}; then "
           f"the right one: {locked_out.get('error', {}).get('code', 'ok')}; security.log: "
           f"{logged} failed logins, {log.count('locked after repeated')} lock, "
           f"{sum(f'guess-{i:06d}' in log for i in range(tried))} passwords",
           tried=tried, unauthorized=outcomes["unauthorized"], locked=outcomes["locked"])
    assert outcomes["ok"] == 0
    assert outcomes["unauthorized"] == 10  # FAILURES_PER_USER, then the id is locked
    assert outcomes["locked"] == tried - 10
    assert locked_out["error"]["code"] == "locked"
    assert logged == 10 and "locked after repeated failed logins" in log
    assert "guess-" not in log and VICTIM_PASSWORD not in log


def test_failed_operator_auth_is_logged(system):
    with LineClient(system.host, system.port) as conn:
        for attempt in range(3):
            assert conn.ask(f"AUTH,not-the-token-{attempt}")["error"]["code"] == "unauthorized"
    log = (system.data_dir / "security.log").read_text()
    assert log.count("failed AUTH") == 3 and "not-the-token" not in log


def test_a_txn_reused_for_a_different_command_is_stale(system):
    with LineClient(system.host, system.port) as conn:
        assert conn.ask("LOGIN,tina,tina-secret")["ok"]
        first = conn.ask("[500] ADD,tina,1.00")
        assert first["ok"]
        attempts = {"different amount": "[500] ADD,tina,2.00",
                    "different command": "[500] BUY,tina,ABC,1.00",
                    "older txn": "[499] ADD,tina,1.00"}
        codes = {what: conn.ask(line)["error"]["code"] for what, line in attempts.items()}
        retry = conn.ask("[500] ADD,tina,1.00")
        summary = conn.ask("DISPLAY_SUMMARY,tina")["result"]
    record("access/stale txn", f"a txn reused for another command: {codes}; the same command "
           f"again: replayed={retry.get('replayed')}; cash {summary['cash']}")
    assert set(codes.values()) == {"stale_txn"}
    assert retry["ok"] and retry["replayed"] is True and retry["result"] == first["result"]
    assert summary["cash"] == "1.00" and summary["transactions_total"] == 1
