"""The handshake that opens a TCP link between the gateway and a remote shard (no I/O here).

Both sides prove they know the cluster secret without sending it: each sends a random challenge
and answers the other's with an HMAC-SHA256 over both challenges, its role, the shard's index K,
the shard count N and the protocol version, so a proof is good for one link only and a mismatch
of K, N or version also fails it. The shard speaks first:

    shard   -> [H, version, K, N, shard_challenge]
    gateway -> [G, version, K, N, role, gateway_challenge, gateway_proof]   role: gateway | probe
    shard   -> [W, shard_proof, max_txn]     or  [X, reason] and the link closes
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.shards.channel import Frame

#: Bumped whenever the frames change meaning; both sides must agree.
PROTOCOL_VERSION = 1
#: The least secret worth the name (bytes, surrounding whitespace stripped).
MIN_SECRET_BYTES = 16
#: What a peer may send before it has proved itself (a handshake message is ~200 bytes).
MAX_HANDSHAKE_FRAME = 4096
#: Seconds a peer has to complete the handshake before the link is closed.
HANDSHAKE_TIMEOUT = 10.0
ROLES = ("gateway", "probe")


class HandshakeRefused(Exception):
    """The other side is not a peer of this cluster, or not the one expected; says why."""


def read_secret(path: str | Path) -> bytes:
    """The cluster secret in `path`; ValueError naming the problem when it is unusable."""
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ValueError(f"cannot read the cluster secret {path}: {exc.strerror}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the cluster secret in {path} is {len(secret)} bytes; it needs at "
                         f"least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32 > {path}`)")
    return secret


def challenge() -> str:
    return secrets.token_hex(16)


def proof(secret: bytes, role: str, version: int, index: int, count: int, shard_challenge: str,
          gateway_challenge: str) -> str:
    """`role`'s answer to both challenges for this K, N and version."""
    text = f"daytrade-shard-link|{role}|{version}|{index}|{count}|{shard_challenge}|" \
           f"{gateway_challenge}"
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Claim:
    """What the gateway (or a probe) said in its G message."""

    role: str
    gateway_challenge: str


def hello(index: int, count: int, shard_challenge: str) -> list[Any]:
    return [Frame.HELLO, PROTOCOL_VERSION, index, count, shard_challenge]


def _agree(version: Any, index: Any, count: Any, want_index: int, want_count: int) -> None:
    """The other side's version, K and N (as it said them) are this side's."""
    if version != PROTOCOL_VERSION:
        raise HandshakeRefused(f"the other side speaks protocol version {version!r}, this side "
                               f"{PROTOCOL_VERSION}")
    if (index, count) != (want_index, want_count):
        raise HandshakeRefused(f"the other side is for shard {index!r} of {count!r}, this side "
                               f"for shard {want_index} of {want_count}")


def check_claim(message: list[Any], secret: bytes, index: int, count: int,
                shard_challenge: str) -> Claim:
    """The shard's check of the gateway's G message; HandshakeRefused says why it fails."""
    if not message or message[0] != Frame.CLAIM:
        raise HandshakeRefused(f"a {str(message[0])[:8]!r} message before the handshake")
    if len(message) != 7 or not all(type(v) is str for v in message[4:]):
        raise HandshakeRefused("a malformed handshake")
    _, version, k, n, role, gateway_challenge, gateway_proof = message
    _agree(version, k, n, index, count)
    if role not in ROLES:
        raise HandshakeRefused(f"unknown role {role[:16]!r}")
    expected = proof(secret, role, version, index, count, shard_challenge, gateway_challenge)
    if not hmac.compare_digest(expected, gateway_proof):
        raise HandshakeRefused("wrong cluster secret")
    return Claim(role, gateway_challenge)


def welcome(secret: bytes, index: int, count: int, shard_challenge: str, claim: Claim,
            max_txn: int) -> list[Any]:
    shard_proof = proof(secret, "shard", PROTOCOL_VERSION, index, count, shard_challenge,
                        claim.gateway_challenge)
    return [Frame.WELCOME, shard_proof, max_txn]


def answer_hello(message: list[Any], secret: bytes, index: int, count: int, role: str,
                 gateway_challenge: str) -> tuple[list[Any], str]:
    """The gateway's G message for the shard's H message, and the shard's challenge."""
    if not message or message[0] == Frame.REFUSED:
        raise HandshakeRefused(f"the shard refused: {message[1] if len(message) > 1 else ''}")
    if message[0] != Frame.HELLO or len(message) != 5 or type(message[4]) is not str:
        raise HandshakeRefused("the peer did not greet as a daytrade shard")
    _, version, k, n, shard_challenge = message
    _agree(version, k, n, index, count)
    claim = [Frame.CLAIM, PROTOCOL_VERSION, index, count, role, gateway_challenge,
             proof(secret, role, PROTOCOL_VERSION, index, count, shard_challenge,
                   gateway_challenge)]
    return claim, shard_challenge


def check_welcome(message: list[Any], secret: bytes, index: int, count: int,
                  shard_challenge: str, gateway_challenge: str) -> int:
    """The gateway's check of the shard's W message: the shard's highest journaled txn."""
    if message and message[0] == Frame.REFUSED:
        raise HandshakeRefused(f"the shard refused: {message[1] if len(message) > 1 else ''}")
    if (not message or message[0] != Frame.WELCOME or len(message) != 3
            or type(message[1]) is not str or type(message[2]) is not int):
        raise HandshakeRefused("a malformed welcome")
    expected = proof(secret, "shard", PROTOCOL_VERSION, index, count, shard_challenge,
                     gateway_challenge)
    if not hmac.compare_digest(expected, message[1]):
        raise HandshakeRefused("the shard does not know the cluster secret")
    return message[2]


def refused(reason: str) -> list[Any]:
    return [Frame.REFUSED, reason]
