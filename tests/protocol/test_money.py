"""Money (COMMANDS.md "Amounts"): dollars with at most two decimals on the wire, cents inside."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.money import (
    MAX_AMOUNT_CENTS,
    MAX_AMOUNT_TEXT,
    format_cents,
    parse_cents,
    parse_signed_cents,
)


@pytest.mark.parametrize(("text", "cents"), [
    ("1", 100),
    ("0.5", 50),
    ("0.05", 5),
    ("12.34", 1234),
    ("100.00", 10_000),
    ("0001.10", 110),
    ("9999999999.99", 999_999_999_999),
])
def test_parse_cents_reads_dollars_with_up_to_two_decimals(text, cents):
    assert parse_cents(text) == cents


def test_parse_cents_reads_zero_and_leaves_the_positive_rule_to_the_caller():
    assert parse_cents("0") == 0
    assert parse_cents("0.00") == 0


@pytest.mark.parametrize("text", [
    "", "-5", "+5", "10.001", ".5", "5.", "1e3", "1e309", "NaN", "inf", "1_000", "1,000",
    "\u0665", "1\u0660", "\uff11", " 5", "5 ", "5\n", "12345678901", "1" * 5000, "0x10", "5..0",
])
def test_parse_cents_refuses_anything_else(text):
    assert parse_cents(text) is None


@pytest.mark.parametrize(("cents", "text"), [
    (0, "0.00"), (5, "0.05"), (50, "0.50"), (1234, "12.34"), (100_000, "1000.00"),
    (-5, "-0.05"), (-1234, "-12.34"),
])
def test_format_cents_writes_exactly_two_decimals(cents, text):
    assert format_cents(cents) == text


@settings(max_examples=2000, deadline=None)
@given(st.integers(min_value=0, max_value=999_999_999_999))
def test_format_then_parse_round_trips(cents):
    assert parse_cents(format_cents(cents)) == cents


@settings(max_examples=2000, deadline=None)
@given(st.text())
def test_parse_cents_is_none_or_a_non_negative_int(text):
    cents = parse_cents(text)
    assert cents is None or (type(cents) is int and cents >= 0)


def test_the_stated_maximum_amount_is_the_largest_that_parses():
    assert parse_cents(MAX_AMOUNT_TEXT) == MAX_AMOUNT_CENTS
    assert parse_cents(format_cents(MAX_AMOUNT_CENTS + 1)) is None


@pytest.mark.parametrize(("text", "cents"), [("12.34", 1234), ("-5.00", -500), ("-0.01", -1),
                                             ("0.00", 0)])
def test_parse_signed_cents_reads_reply_money_below_zero_too(text, cents):
    assert parse_signed_cents(text) == cents


@pytest.mark.parametrize("text", ["", "-", "--5", "+5", "- 5", "-.5", "-5.001", "5-"])
def test_parse_signed_cents_refuses_what_is_not_signed_dollars(text):
    assert parse_signed_cents(text) is None


@given(st.integers(min_value=-MAX_AMOUNT_CENTS, max_value=MAX_AMOUNT_CENTS))
def test_format_then_parse_signed_round_trips(cents):
    assert parse_signed_cents(format_cents(cents)) == cents
