"""Argparse pieces shared by `daytrade up` and `daytrade quotes`: a parser whose errors are one
line (exit status 2), value types that say what a bad flag should be, and a help formatter that
shows every meaningful default."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from typing import Any, NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line naming the problem and where help is,
    instead of argparse's usage block (a dozen lines for `daytrade up`) above the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (`{self.prog} --help` lists the options)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds `(default: X)` to an option's help, except where there is nothing to show (no
    default, a flag that is off) or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False) or "%(default)" in text:
            return text
        return super()._get_help_string(action) or text


def port(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a port is a whole number, not {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {text}")
    return value


def at_least(kind: type, low: float) -> Callable[[str], Any]:
    """An argparse type: a finite `kind` (int or float) not below `low`."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            noun = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {noun}, not {text!r}") from None
        if not math.isfinite(value) or value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:g}, not {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def above_zero(text: str) -> float:
    """A finite number of seconds greater than zero."""
    value = at_least(float, 0.0)(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


_HOST_PORT = re.compile(r"(?P<host>[^\s:]*|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})")


def host_port(text: str) -> tuple[str, int]:
    """`HOST:PORT` (HOST may be empty for 127.0.0.1), PORT 1 to 65535."""
    m = _HOST_PORT.fullmatch(text)
    if m is None or not 1 <= int(m.group("port")) <= 65535:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT with a port 1 to 65535, not {text!r}")
    return m.group("host").strip("[]") or "127.0.0.1", int(m.group("port"))


def url(*schemes: str) -> Callable[[str], str]:
    """An argparse type: a URL of one of `schemes` (`redis`, `mongodb`, ...)."""

    def parse(text: str) -> str:
        scheme, sep, rest = text.partition("://")
        if not sep or scheme not in schemes or not rest:
            wanted = " or ".join(f"{s}://..." for s in schemes)
            raise argparse.ArgumentTypeError(f"must be a URL {wanted}, not {text!r}")
        return text

    parse.__name__ = "URL"
    return parse


def existing_file(text: str) -> str:
    """A path to a file that exists now."""
    from pathlib import Path

    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return text
