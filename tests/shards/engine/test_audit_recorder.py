"""The audit recorder: every audit event built in one place, numbered per account or, for no
account, -2, -1 within the command."""

from protocol.quote import PriceQuote
from protocol.replies import TRIGGER_FIRED
from server.shards.account import Account
from server.shards.audit_events import (
    ACCOUNT_TRANSACTION,
    DEBUG_EVENT,
    ERROR_EVENT,
    QUOTE_SERVER,
    USER_COMMAND,
    AuditEvent,
)
from server.shards.engine.audit import AuditRecorder

T0 = 1_000_000


def test_events_of_an_account_are_numbered_by_its_counter():
    audit = AuditRecorder("shard-1")
    acct = Account("ann", event_seq=4)
    audit.command(acct, 9, T0, "ADD", (None, 500, None))
    audit.account_transaction(acct, 9, T0, 500)
    assert audit.drain().events == [
        AuditEvent(USER_COMMAND, 9, 5, T0, "shard-1", "ann", "ADD", funds=500),
        AuditEvent(ACCOUNT_TRANSACTION, 9, 6, T0, "shard-1", "ann", funds=500, action="add")]
    assert acct.event_seq == 6


def test_money_taken_from_cash_is_a_remove():
    audit = AuditRecorder("shard-1")
    audit.account_transaction(Account("ann"), 9, T0, -300)
    (event,) = audit.drain().events
    assert (event.funds, event.action) == (300, "remove")


def test_a_refusal_without_an_account_numbers_its_events_minus_two_and_minus_one():
    audit = AuditRecorder("shard-1")
    audit.refused_without_account("zed", 9, T0, "BUY", ("ABC", 100, None), "no account")
    assert audit.drain().events == [
        AuditEvent(USER_COMMAND, 9, -2, T0, "shard-1", "zed", "BUY", "ABC", 100),
        AuditEvent(ERROR_EVENT, 9, -1, T0, "shard-1", "zed", "BUY", "ABC", 100,
                   message="no account")]


def test_the_all_users_dumplog_is_one_event_of_no_user():
    audit = AuditRecorder("shard-1")
    audit.dumplog_of_all(9, T0, "all.xml")
    assert audit.drain().events == [
        AuditEvent(USER_COMMAND, 9, -1, T0, "shard-1", None, "DUMPLOG", filename="all.xml")]


def test_a_quote_server_hit_is_a_quote_server_event_in_the_name_it_was_asked_for():
    audit = AuditRecorder("shard-1")
    audit.quote(Account("ann"), 9, T0, "BUY", PriceQuote("ABC", 1_050, T0 - 5, "k1", "bob", True))
    assert audit.drain().events == [
        AuditEvent(QUOTE_SERVER, 9, 1, T0, "shard-1", "bob", symbol="ABC", price=1_050,
                   quote_time=T0 - 5, cryptokey="k1")]


def test_a_cached_quote_is_a_debug_event_of_the_command():
    audit = AuditRecorder("shard-1")
    audit.quote(Account("ann"), 9, T0, "BUY", PriceQuote("ABC", 1_050, T0 - 5, "k1", "bob"))
    (event,) = audit.drain().events
    assert (event.kind, event.user, event.command, event.message) == (
        DEBUG_EVENT, "ann", "BUY", f"cached quote ABC 10.50 quoteServerTime {T0 - 5} cryptokey k1")


def test_drain_takes_events_and_pushes_once():
    audit = AuditRecorder("shard-1")
    audit.push("ann", TRIGGER_FIRED, {"user": "ann"})
    assert audit.has_effects()
    assert [(u, p.event) for u, p in audit.drain().pushes] == [("ann", TRIGGER_FIRED)]
    assert not audit.has_effects()
    assert audit.drain() == ([], [])
