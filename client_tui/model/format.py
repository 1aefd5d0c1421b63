"""How money, ages, countdowns, percentages and times read on screen."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from protocol.money import format_cents, parse_signed_cents


def money(cents: int) -> str:
    """`1234567` -> `12,345.67`; negatives get a leading `-`."""
    text = format_cents(abs(cents))
    whole, frac = text.split(".")
    grouped = f"{int(whole):,}"
    return f"{'-' if cents < 0 else ''}{grouped}.{frac}"


def money_text(value: object) -> str:
    """A reply's money string (`"12500.00"`) as `money` shows it (`12,500.00`); anything that
    is not one is shown as it is."""
    if isinstance(value, str):
        cents = parse_signed_cents(value)
        if cents is not None:
            return money(cents)
    return "" if value is None else str(value)


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`1 share`, `2 shares`, `1,000 shares` (`nouns`: an irregular plural)."""
    return f"{n:,} {noun if n == 1 else (nouns or noun + 's')}"


def signed_money(cents: int) -> str:
    """`money` with an explicit sign: `+1.00`, `-1.00`, `0.00`."""
    if cents > 0:
        return "+" + money(cents)
    return money(cents)


def percent(basis_points: int) -> str:
    """Hundredths of a percent as a signed percentage: `420` -> `+4.20%`."""
    sign = "+" if basis_points > 0 else "-" if basis_points < 0 else ""
    whole, frac = divmod(abs(basis_points), 100)
    return f"{sign}{whole}.{frac:02d}%"


def ratio_bp(numerator: int, denominator: int) -> int:
    """`numerator / denominator` in basis points, rounded half away from zero (integers only)."""
    if denominator == 0:
        raise ZeroDivisionError("ratio of a zero denominator")
    scaled = numerator * 10_000
    sign = -1 if (scaled < 0) != (denominator < 0) else 1
    q, r = divmod(abs(scaled), abs(denominator))
    if 2 * r >= abs(denominator):
        q += 1
    return sign * q


def age(ms: int) -> str:
    """A quote's age: `7s`, `59s`, `1m05s`, `2h03m`."""
    seconds = max(0, ms) // 1000
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def countdown(ms: int) -> str:
    """Time left as `m:ss`, rounded up so that `0:00` means expired."""
    seconds = -(-max(0, ms) // 1000)
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}:{seconds:02d}"


def clock(epoch_ms: int, tz: tzinfo | None = None) -> str:
    """`HH:MM:SS` in `tz` (the machine's zone when None)."""
    return _datetime(epoch_ms, tz).strftime("%H:%M:%S")


def timestamp(epoch_ms: int, tz: tzinfo | None = None) -> str:
    """`YYYY-MM-DD HH:MM:SS` in `tz` (the machine's zone when None)."""
    return _datetime(epoch_ms, tz).strftime("%Y-%m-%d %H:%M:%S")


def iso_utc(epoch_ms: int) -> str:
    """ISO 8601 in UTC with milliseconds, for files: `2026-11-25T12:00:00.123Z`."""
    stamp = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _datetime(epoch_ms: int, tz: tzinfo | None) -> datetime:
    stamp = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return stamp.astimezone(tz) if tz is not None else stamp.astimezone()
