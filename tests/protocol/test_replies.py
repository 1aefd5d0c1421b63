"""Replies and pushed events as JSON lines (PROTOCOL.md "Replies" and "Pushed events")."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ErrorCode, UnknownCommand
from protocol.replies import (
    PENDING_EXPIRED,
    TRIGGER_FIRED,
    DecodeError,
    PushedEvent,
    Reply,
    _general_json,
    decode,
    error,
    error_from,
    ok,
)

# The two reply examples of PROTOCOL.md, verbatim.
BUY_EXAMPLE = ('{"txn":12,"cmd":"BUY","ok":true,"result":{"symbol":"ABC","shares":3,'
               '"price":"33.33","cost":"99.99","expires_at":1764072000000,"cash":"900.01"}}')
COMMIT_BUY_EXAMPLE = ('{"txn":13,"cmd":"COMMIT_BUY","ok":false,"error":{"code":"no_pending_buy",'
                      '"message":"no pending BUY within the last 60 s"}}')
BUY_RESULT = {"symbol": "ABC", "shares": 3, "price": "33.33", "cost": "99.99",
              "expires_at": 1764072000000, "cash": "900.01"}


def test_ok_reply_encodes_as_the_protocol_example():
    assert ok(12, "BUY", BUY_RESULT).to_json() == BUY_EXAMPLE


def test_error_reply_encodes_as_the_protocol_example():
    reply = error(13, "COMMIT_BUY", ErrorCode.NO_PENDING_BUY, "no pending BUY within the last 60 s")
    assert reply.to_json() == COMMIT_BUY_EXAMPLE


def test_protocol_examples_decode_to_the_replies_they_show():
    assert decode(BUY_EXAMPLE) == Reply(12, "BUY", True, BUY_RESULT)
    assert decode(COMMIT_BUY_EXAMPLE) == Reply(13, "COMMIT_BUY", False, None,
                                               ErrorCode.NO_PENDING_BUY,
                                               "no pending BUY within the last 60 s")


def test_replayed_reply_adds_replayed_true_and_keeps_the_rest():
    original = ok(12, "BUY", BUY_RESULT)
    again = original.as_replayed()
    assert again.replayed and not original.replayed
    assert json.loads(again.to_json()) == {**json.loads(BUY_EXAMPLE), "replayed": True}
    assert decode(again.to_json()) == again


def test_ok_reply_without_result_has_an_empty_result_object():
    assert json.loads(Reply(1, "PING", True).to_json())["result"] == {}


def test_reply_is_one_ascii_line_whatever_the_message():
    reply = error(None, None, ErrorCode.BAD_REQUEST, "bad \u00e9 line\nsecond\u2028line")
    text = reply.to_json()
    assert text.isascii() and "\n" not in text and "\u2028" not in text
    assert decode(text).message == "bad \u00e9 line\nsecond\u2028line"


def test_reply_json_is_computed_once():
    reply = ok(1, "ADD", {"cash": "1.00"})
    assert reply.to_json() is reply.to_json()


def test_error_from_a_parse_error_carries_its_txn_command_code_and_message():
    exc = UnknownCommand("unknown command 'FOO'", txn=7, command=None)
    reply = error_from(exc)
    assert (reply.txn, reply.cmd, reply.ok, reply.code, reply.message) == (
        7, None, False, ErrorCode.UNKNOWN_COMMAND, "unknown command 'FOO'")
    assert json.loads(reply.to_json())["error"] == {"code": "unknown_command",
                                                    "message": "unknown command 'FOO'"}


@pytest.mark.parametrize("name", [TRIGGER_FIRED, PENDING_EXPIRED])
def test_pushed_event_has_event_instead_of_ok_and_round_trips(name):
    event = PushedEvent(name, {"user": "u1", "symbol": "ABC", "shares": 3, "price": "1.00",
                               "cash": "5.00"})
    obj = json.loads(event.to_json())
    assert obj["event"] == name and "ok" not in obj
    assert decode(event.to_json()) == event


@pytest.mark.parametrize("line", [
    "", "not json", "[1,2]", '"text"', '{"txn":1}', '{"ok":true}', '{"ok":true,"result":[]}',
    '{"ok":false}', '{"ok":false,"error":"x"}', '{"ok":false,"error":{"message":"m"}}',
    '{"ok":false,"error":{"code":"no_such_code","message":"m"}}', '{"event":5}',
    '{"ok":false,"error":{"code":7,"message":"m"}}', '{"ok":false,"error":{"code":["busy"]}}',
])
def test_decode_refuses_lines_that_are_not_replies_or_events(line):
    with pytest.raises(DecodeError):
        decode(line)


def test_decode_accepts_bytes():
    assert decode(BUY_EXAMPLE.encode()) == Reply(12, "BUY", True, BUY_RESULT)


# Every integer of the protocol (txns, shares, times) fits in 64 bits, as orjson requires.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10)
txns = st.none() | st.integers(min_value=1, max_value=10**18)
names = st.none() | st.sampled_from(["ADD", "BUY", "SELL", "QUOTE", "DISPLAY_SUMMARY"])


@settings(max_examples=500, deadline=None)
@given(txns, names, st.dictionaries(st.text(), json_values, max_size=5), st.booleans())
def test_ok_replies_round_trip_through_json(txn, cmd, result, replayed):
    reply = Reply(txn, cmd, True, result, replayed=replayed)
    assert decode(reply.to_json()) == reply


@settings(max_examples=500, deadline=None)
@given(txns, names, st.sampled_from(list(ErrorCode)), st.text(), st.booleans())
def test_error_replies_round_trip_through_json(txn, cmd, code, message, replayed):
    reply = Reply(txn, cmd, False, None, code, message, replayed)
    assert decode(reply.to_json()) == reply


any_txns = txns | st.integers(min_value=2**63 - 2, max_value=2**64) | st.just(True)
any_names = names | st.sampled_from(["COMMIT_BUY", "SET_SELL_TRIGGER", "PING", "bad \"name\"",
                                     "\u00e9"])
messages = st.none() | st.text() | st.sampled_from(["", "x\ud800y", "caf\u00e9", "a\x00b"])


@settings(max_examples=1000, deadline=None)
@given(any_txns, any_names, st.dictionaries(st.text(), json_values, max_size=4) | st.none(),
       st.booleans())
def test_ok_reply_json_is_the_general_encoding(txn, cmd, result, replayed):
    reply = Reply(txn, cmd, True, result, replayed=replayed)
    assert reply.to_json() == _general_json(reply)


@settings(max_examples=1000, deadline=None)
@given(any_txns, any_names, st.sampled_from(list(ErrorCode)), messages, st.booleans())
def test_error_reply_json_is_the_general_encoding(txn, cmd, code, message, replayed):
    reply = Reply(txn, cmd, False, None, code, message, replayed)
    assert reply.to_json() == _general_json(reply)
