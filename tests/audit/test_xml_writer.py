"""The DUMPLOG XML writer: one schema-valid element per audit event, streamed."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator

import pytest
from lxml import etree

from protocol.logfile import log_schema
from server.audit.xml_writer import UnknownEventKind, escape_text, render_event, write_log
from server.shards.audit_events import (
    ACCOUNT_TRANSACTION,
    DEBUG_EVENT,
    ERROR_EVENT,
    EVENT_KINDS,
    QUOTE_SERVER,
    SYSTEM_EVENT,
    USER_COMMAND,
    AuditEvent,
)

T0 = 1167631200000


def ev(kind: str, txn: int = 1, **fields: object) -> AuditEvent:
    return AuditEvent(kind, txn, 0, T0, fields.pop("server", "gateway"),  # type: ignore[arg-type]
                      fields.pop("user", "jiosesdo"), **fields)  # type: ignore[arg-type]


FULL_EVENTS = {
    USER_COMMAND: ev(USER_COMMAND, command="BUY", symbol="ABC", funds=10000, filename="f.xml"),
    QUOTE_SERVER: ev(QUOTE_SERVER, server="shard-1", price=1000, symbol="ABC", quote_time=T0 + 3,
                     cryptokey="IRrR7UeTO35kSWUgG0QJKmB35sL27FKM7AVhP5qpjCgmWQeXFJs35g=="),
    ACCOUNT_TRANSACTION: ev(ACCOUNT_TRANSACTION, server="shard-1", action="remove", funds=10000),
    SYSTEM_EVENT: ev(SYSTEM_EVENT, server="shard-1", command="SET_BUY_TRIGGER", symbol="ABC",
                     funds=995),
    ERROR_EVENT: ev(ERROR_EVENT, command="COMMIT_BUY", message="no pending BUY"),
    DEBUG_EVENT: ev(DEBUG_EVENT, command="QUOTE", symbol="ABC", message="cached 10.00"),
}


def render(events: list[AuditEvent]) -> bytes:
    out = io.BytesIO()
    write_log(events, out)
    return out.getvalue()


def parse_valid(xml: bytes) -> etree._Element:
    """Parse `xml`, asserting it is well-formed and valid against logfile.xsd."""
    root = etree.fromstring(xml)
    schema = log_schema()
    assert schema.validate(root), schema.error_log
    return root


def fields_of(element: etree._Element) -> dict[str, str | None]:
    return {child.tag: child.text for child in element}


def test_every_kind_renders_a_schema_valid_element() -> None:
    assert set(FULL_EVENTS) == set(EVENT_KINDS)
    root = parse_valid(render(list(FULL_EVENTS.values())))
    assert [child.tag for child in root] == list(FULL_EVENTS)


def test_write_log_returns_the_number_of_events() -> None:
    assert write_log(list(FULL_EVENTS.values()), io.BytesIO()) == len(FULL_EVENTS)


def test_an_empty_log_is_a_valid_document() -> None:
    out = io.BytesIO()
    assert write_log([], out) == 0
    assert out.getvalue() == b'<?xml version="1.0"?>\n<log>\n</log>\n'
    parse_valid(out.getvalue())


def test_layout_is_tab_indented_like_the_course_sample() -> None:
    event = AuditEvent(USER_COMMAND, 1, 0, T0, "CLT1", "jiosesdo", "ADD", funds=10000)
    assert render([event]) == (
        b'<?xml version="1.0"?>\n<log>\n'
        b"\t<userCommand>\n"
        b"\t\t<timestamp>1167631200000</timestamp>\n"
        b"\t\t<server>CLT1</server>\n"
        b"\t\t<transactionNum>1</transactionNum>\n"
        b"\t\t<command>ADD</command>\n"
        b"\t\t<username>jiosesdo</username>\n"
        b"\t\t<funds>100.00</funds>\n"
        b"\t</userCommand>\n"
        b"</log>\n"
    )


def test_user_command_carries_its_fields_in_schema_order() -> None:
    element = parse_valid(render([FULL_EVENTS[USER_COMMAND]]))[0]
    assert fields_of(element) == {
        "timestamp": str(T0), "server": "gateway", "transactionNum": "1", "command": "BUY",
        "username": "jiosesdo", "stockSymbol": "ABC", "filename": "f.xml", "funds": "100.00"}
    assert list(fields_of(element)) == ["timestamp", "server", "transactionNum", "command",
                                        "username", "stockSymbol", "filename", "funds"]


def test_quote_server_carries_price_symbol_user_time_and_cryptokey() -> None:
    element = parse_valid(render([FULL_EVENTS[QUOTE_SERVER]]))[0]
    assert fields_of(element) == {
        "timestamp": str(T0), "server": "shard-1", "transactionNum": "1", "price": "10.00",
        "stockSymbol": "ABC", "username": "jiosesdo", "quoteServerTime": str(T0 + 3),
        "cryptokey": "IRrR7UeTO35kSWUgG0QJKmB35sL27FKM7AVhP5qpjCgmWQeXFJs35g=="}


def test_account_transaction_carries_action_user_and_funds() -> None:
    element = parse_valid(render([FULL_EVENTS[ACCOUNT_TRANSACTION]]))[0]
    assert fields_of(element) == {
        "timestamp": str(T0), "server": "shard-1", "transactionNum": "1", "action": "remove",
        "username": "jiosesdo", "funds": "100.00"}


def test_error_event_carries_its_error_message() -> None:
    element = parse_valid(render([FULL_EVENTS[ERROR_EVENT]]))[0]
    assert element.findtext("errorMessage") == "no pending BUY"
    assert element.find("debugMessage") is None


def test_debug_event_carries_its_debug_message() -> None:
    element = parse_valid(render([FULL_EVENTS[DEBUG_EVENT]]))[0]
    assert element.findtext("debugMessage") == "cached 10.00"
    assert element.find("errorMessage") is None


def test_user_command_and_system_event_never_carry_a_message() -> None:
    events = [ev(USER_COMMAND, command="ADD", message="x"), ev(SYSTEM_EVENT, command="ADD",
                                                              message="x")]
    root = parse_valid(render(events))
    assert [len(element) for element in root] == [5, 5]


def test_none_fields_are_left_out() -> None:
    event = AuditEvent(ERROR_EVENT, 7, 0, T0, "gateway", None, "BUY")
    element = parse_valid(render([event]))[0]
    assert list(fields_of(element)) == ["timestamp", "server", "transactionNum", "command"]


def test_a_quote_server_event_renders_only_the_fields_it_has() -> None:
    event = AuditEvent(QUOTE_SERVER, 7, 0, T0, "shard-0", "u", price=5, symbol="A")
    assert list(fields_of(etree.fromstring(render([event]))[0])) == [
        "timestamp", "server", "transactionNum", "price", "stockSymbol", "username"]


@pytest.mark.parametrize(("cents", "text"), [
    (0, "0.00"), (5, "0.05"), (99, "0.99"), (100, "1.00"), (123456789, "1234567.89"),
    (-250, "-2.50")])
def test_funds_are_dollars_with_two_decimals(cents: int, text: str) -> None:
    element = parse_valid(render([ev(ACCOUNT_TRANSACTION, action="add", funds=cents)]))[0]
    assert element.findtext("funds") == text


def test_price_is_dollars_with_two_decimals() -> None:
    event = FULL_EVENTS[QUOTE_SERVER]._replace(price=1)
    assert parse_valid(render([event]))[0].findtext("price") == "0.01"


HOSTILE = ["a<b", "a&b", "]]>", "<![CDATA[x]]>", "&amp;", "nul\x00here", "bell\x07", "tab\there",
           "cr\rlf\n", "del\x7f", "c1\x85", "lone \ud800 surrogate", "nonchar \ufffe\uffff",
           "é ü 漢字 😀", "\x00" * 5]


@pytest.mark.parametrize("text", HOSTILE, ids=repr)
def test_hostile_text_in_messages_keeps_the_xml_valid(text: str) -> None:
    parse_valid(render([ev(ERROR_EVENT, command="BUY", message=text),
                        ev(DEBUG_EVENT, command="BUY", message=text)]))


@pytest.mark.parametrize("text", HOSTILE, ids=repr)
def test_hostile_text_in_ids_keeps_the_xml_valid(text: str) -> None:
    event = AuditEvent(USER_COMMAND, 3, 0, T0, text, text, "DUMPLOG", filename=text)
    quote = AuditEvent(QUOTE_SERVER, 3, 0, T0, text, text, price=1, symbol="A", quote_time=T0,
                       cryptokey=text)
    parse_valid(render([event, quote]))


def test_markup_characters_round_trip_as_text() -> None:
    element = parse_valid(render([ev(ERROR_EVENT, command="BUY", message="<a> & ]]> b")]))[0]
    assert element.findtext("errorMessage") == "<a> & ]]> b"


def test_control_characters_never_reach_the_xml_and_stay_visible() -> None:
    xml = render([ev(ERROR_EVENT, command="BUY", message="a\x00b\x07c\td\ne\x1bf")])
    assert not any(byte < 0x20 and byte not in (0x09, 0x0A) for byte in xml)
    message = parse_valid(xml)[0].findtext("errorMessage")
    assert message == "a\\x00b\\x07c\\x09d\\x0ae\\x1bf"


def test_escape_text_leaves_plain_text_alone() -> None:
    plain = "oY01WVirLr ABC 100.00 shard-3"
    assert escape_text(plain) is plain


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(UnknownEventKind):
        render_event(ev("marketEvent"))
    with pytest.raises(UnknownEventKind):
        write_log([ev("marketEvent")], io.BytesIO())


def test_render_event_is_the_element_write_log_writes() -> None:
    events = list(FULL_EVENTS.values())
    body = "".join(render_event(e) for e in events).encode()
    assert render(events) == b'<?xml version="1.0"?>\n<log>\n' + body + b"</log>\n"


class CountingSink:
    """A binary sink that keeps only how much it was given."""

    def __init__(self) -> None:
        self.bytes = 0
        self.writes = 0

    def write(self, data: bytes) -> int:
        self.bytes += len(data)
        self.writes += 1
        return len(data)


def many_events(n: int, sink: CountingSink | None = None) -> Iterator[AuditEvent]:
    for i in range(n):
        if sink is not None and i == n // 2:
            # Streaming: half-way through the input, output must already be on its way.
            assert sink.bytes > 0
        user = f"user{i % 1000}"
        yield AuditEvent(USER_COMMAND, i + 1, 0, T0 + i, "gateway", user, "BUY", "ABC", 100 + i)
        yield AuditEvent(ACCOUNT_TRANSACTION, i + 1, 1, T0 + i, "shard-2", user, action="remove",
                         funds=100 + i)


def test_a_large_stream_is_written_without_holding_it_in_memory() -> None:
    sink = CountingSink()
    tracemalloc.start()
    try:
        count = write_log(many_events(100_000, sink), sink)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert sink.bytes > 40_000_000
    assert sink.writes > 100
    # The document is ~48 MB; the writer may hold a chunk (and the escape cache), never the log.
    assert peak < 8 * 1024 * 1024
