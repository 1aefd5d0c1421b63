"""Money on the wire is dollars with at most two decimals; inside, it is always integer cents."""

from __future__ import annotations

import re

# [0-9] (never \d) so that only ASCII digits pass; fullmatch so that a trailing "\n" cannot.
_AMOUNT = re.compile(r"([0-9]{1,10})(?:\.([0-9]{1,2}))?")


def parse_cents(text: str) -> int | None:
    """Return the amount in cents, or None when `text` is not `^[0-9]{1,10}(\\.[0-9]{1,2})?$`.

    Zero parses (to 0); whether zero is allowed is the caller's rule.
    """
    m = _AMOUNT.fullmatch(text)
    if m is None:
        return None
    return cents_of(*m.groups())


def parse_signed_cents(text: str) -> int | None:
    """A reply's money that may be negative (`"-5.00"`, a `cash_delta`) in cents, or None.

    Requests never carry a sign; replies do where money leaves cash.
    """
    if text.startswith("-"):
        value = parse_cents(text[1:])
        return None if value is None else -value
    return parse_cents(text)


#: The largest amount the wire accepts (10 whole-dollar digits, two decimals).
MAX_AMOUNT_CENTS = 999_999_999_999
MAX_AMOUNT_TEXT = "9999999999.99"

_SIGNED = re.compile(r"[+-][0-9]*(?:\.[0-9]*)?")
_DECIMAL = re.compile(r"([0-9]*)(?:\.([0-9]*))?")


def amount_problem(text: str) -> str:
    """What is wrong with an amount `parse_cents` refused, in words a user can act on.

    Only called on the error path, so it may take its time; the checks run from the most
    specific (a sign, too many digits) to the catch-all (not a number).
    """
    if not text:
        return "is empty"
    if _SIGNED.fullmatch(text) and any(ch.isdigit() for ch in text):
        return "must be positive and written without a sign"
    m = _DECIMAL.fullmatch(text)
    if m is None or not any(ch.isdigit() for ch in text):
        return "is not a number: write dollars like 12.50 (ASCII digits, a dot, no exponent)"
    whole, frac = m.groups()
    if frac is not None and len(frac) > 2:
        return "has more than two decimals"
    if not whole:
        return "needs a digit before its decimal point (0.50, not .50)"
    if frac == "":
        return "needs digits after its decimal point"
    if len(whole) > 10:
        return f"is too large: at most {MAX_AMOUNT_TEXT}"
    return "is not dollars with at most two decimals"  # pragma: no cover - parse_cents takes it


#: A fraction as written ("5", "05", "50") -> its cents.
_FRACTION_CENTS = {**{str(i): i * 10 for i in range(10)}, **{f"{i:02d}": i for i in range(100)}}


def cents_of(whole: str, frac: str | None) -> int:
    """Cents of an amount already matched as ASCII dollars and an optional 1-2 digit fraction."""
    if frac is None:
        return int(whole) * 100
    return int(whole) * 100 + _FRACTION_CENTS[frac]


#: "00" to "99": the engine formats several amounts per command, so skip the format spec.
_CENTS = tuple(f"{i:02d}" for i in range(100))


def format_cents(cents: int) -> str:
    """Format integer cents as a dollar string with exactly two decimals (`-` for negatives)."""
    if cents >= 0:
        return f"{cents // 100}.{_CENTS[cents % 100]}"
    cents = -cents
    return f"-{cents // 100}.{_CENTS[cents % 100]}"
