"""Operator token, password hashing (salted scrypt, constant-time compare) and login lockouts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections import deque
from pathlib import Path

# scrypt cost: ~16 MiB and tens of ms per hash, so a stolen hash resists offline guessing.
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16

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
    """Generate this run's operator token and write it to `data_dir/operator.token` (mode 0600)."""
    token = secrets.token_urlsafe(32)
    path = data_dir / "operator.token"
    tmp = data_dir / f".operator.token.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return token, path


class LoginLimiter:
    """Ten failed logins for one user id within 15 minutes lock that id for 15 minutes."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def locked(self, user: str) -> bool:
        until = self._locked_until.get(user)
        if until is None:
            return False
        if self._clock() >= until:
            del self._locked_until[user]
            return False
        return True

    def failed(self, user: str) -> bool:
        """Record a failure; True if the id is now locked."""
        now = self._clock()
        window = self._failures.setdefault(user, deque())
        window.append(now)
        while window and window[0] <= now - USER_WINDOW_S:
            window.popleft()
        if len(window) >= FAILURES_PER_USER:
            self._locked_until[user] = now + USER_LOCK_S
            window.clear()
            return True
        return False

    def succeeded(self, user: str) -> None:
        self._failures.pop(user, None)
