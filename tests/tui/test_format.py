"""client_tui.model.format: how money, ages, countdowns and percentages read."""

from datetime import UTC

import pytest

from client_tui.model import format as fmt


@pytest.mark.parametrize("cents, text", [
    (0, "0.00"), (5, "0.05"), (123456, "1,234.56"), (100_000_000_00, "100,000,000.00"),
    (-98_72, "-98.72"), (-1_234_567, "-12,345.67"),
])
def test_money_groups_thousands_and_keeps_two_decimals(cents, text):
    assert fmt.money(cents) == text


def test_signed_money_marks_gains_with_a_plus():
    assert (fmt.signed_money(1), fmt.signed_money(-1), fmt.signed_money(0)) == (
        "+0.01", "-0.01", "0.00")


@pytest.mark.parametrize("bp, text", [(420, "+4.20%"), (-1000, "-10.00%"), (0, "0.00%"),
                                      (-5, "-0.05%")])
def test_percent_reads_basis_points(bp, text):
    assert fmt.percent(bp) == text


@pytest.mark.parametrize("num, den, bp", [(1, 3, 3333), (2, 3, 6667), (-1, 3, -3333),
                                          (-2, 3, -6667), (50, 500, 1000), (1, 20000, 1)])
def test_ratio_bp_rounds_half_away_from_zero_with_integers(num, den, bp):
    assert fmt.ratio_bp(num, den) == bp


def test_ratio_bp_of_zero_denominator_raises():
    with pytest.raises(ZeroDivisionError):
        fmt.ratio_bp(1, 0)


@pytest.mark.parametrize("ms, text", [(0, "0s"), (999, "0s"), (59_999, "59s"), (65_000, "1m05s"),
                                      (7_380_000, "2h03m"), (-5, "0s")])
def test_age_reads_seconds_then_minutes_then_hours(ms, text):
    assert fmt.age(ms) == text


@pytest.mark.parametrize("ms, text", [(60_000, "1:00"), (59_001, "1:00"), (45_000, "0:45"),
                                      (1, "0:01"), (0, "0:00"), (-3000, "0:00")])
def test_countdown_rounds_up_so_zero_means_expired(ms, text):
    assert fmt.countdown(ms) == text


def test_clock_and_timestamp_use_the_given_zone():
    noon = 1_764_072_000_000  # 2025-11-25 12:00:00 UTC
    assert fmt.clock(noon, UTC) == "12:00:00"
    assert fmt.timestamp(noon + 1_500, UTC) == "2025-11-25 12:00:01"


def test_iso_utc_keeps_milliseconds():
    assert fmt.iso_utc(1_764_072_000_123) == "2025-11-25T12:00:00.123Z"


def test_reply_money_reads_like_the_header():
    from client_tui.model.format import money_text

    assert money_text("12500.00") == "12,500.00"
    assert money_text("-5.00") == "-5.00"
    assert money_text("n/a") == "n/a" and money_text(None) == ""


def test_plurals():
    from client_tui.model.format import plural

    assert plural(1, "share") == "1 share"
    assert plural(2, "share") == "2 shares"
    assert plural(1200, "entry", "entries") == "1,200 entries"
