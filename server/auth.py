"""Operator token, password hashing (salted scrypt, constant-time compare) and login lockouts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

# scrypt cost: ~16 MiB and tens of ms per hash, so a stolen hash resists offline guessing.
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16

#: What a kept operator token must look like (token_urlsafe(32) makes 43 such characters).
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,256}")

#: Lockout rules of PROTOCOL.md.
FAILURES_PER_CONNECTION = 5
FAILURES_PER_USER = 10
USER_WINDOW_S = 15 * 60
USER_LOCK_S = 15 * 60


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash` (base64) of a password."""
    salt = os.urandom(_SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=_N, r=_R,
                            p=_P, maxmem=64 * 1024 * 1024)
    return "$".join(["scrypt", str(_N), str(_R), str(_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches the stored hash; the comparison takes constant time."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        digest = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=int(n),
                                r=int(r), p=int(p), maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def token_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8", "surrogatepass"))


def write_operator_token(data_dir: Path) -> tuple[str, Path]:
    """The operator token of `data_dir`: the one in `data_dir/operator.token` when that file is
    still private (a regular file of ours, mode 0600, holding a token), so that clients keep
    working across restarts; otherwise a new one, written there with mode 0600."""
    path = data_dir / "operator.token"
    kept = _kept_token(path)
    if kept is not None:
        return kept, path
    token = secrets.token_urlsafe(32)
    tmp = data_dir / f".operator.token.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return token, path


def _kept_token(path: Path) -> str | None:
    """The token in `path` if nobody else could have read or planted it, else None."""
    try:
        # O_NOFOLLOW: a symlink planted in place of the file is never read.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077 or st.st_uid != os.getuid()
                or st.st_size > 1024):
            return None
        token = os.read(fd, 1024).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    return token if _TOKEN.fullmatch(token) else None


class LoginLimiter:
    """Ten failed logins for one user id from one client host within 15 minutes lock that id
    for that host for 15 minutes.

    Keyed by (id, host), not by id alone: a stranger who guesses wrong ten times locks only
    their own address out, never the owner of the id (PROTOCOL.md, docs/protocol.md).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._locked_until: dict[tuple[str, str], float] = {}

    def locked(self, user: str, host: str) -> bool:
        key = (user, host)
        until = self._locked_until.get(key)
        if until is None:
            return False
        if self._clock() >= until:
            del self._locked_until[key]
            return False
        return True

    def failed(self, user: str, host: str) -> bool:
        """Record a failure; True if the id is now locked for this host."""
        key = (user, host)
        now = self._clock()
        window = self._failures.setdefault(key, deque())
        window.append(now)
        while window and window[0] <= now - USER_WINDOW_S:
            window.popleft()
        if len(window) >= FAILURES_PER_USER:
            self._locked_until[key] = now + USER_LOCK_S
            del self._failures[key]
            return True
        return False

    def succeeded(self, user: str, host: str) -> None:
        self._failures.pop((user, host), None)
