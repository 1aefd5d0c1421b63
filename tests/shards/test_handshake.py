"""The handshake of a gateway-shard link, as messages: each side proves the cluster secret, and
both agree on K, N and the protocol version."""

from __future__ import annotations

import pytest

from server.shards import handshake as hs
from server.shards.channel import Frame

SECRET = b"0123456789abcdef0123456789abcdef"


def gateway_claim(secret: bytes = SECRET, index: int = 1, count: int = 3,
                  role: str = "gateway") -> tuple[list, str, str]:
    """The shard's hello for shard 1 of 3, and a gateway's claim answering it."""
    shard_challenge = hs.challenge()
    hello = hs.hello(1, 3, shard_challenge)
    gateway_challenge = hs.challenge()
    claim, _ = hs.answer_hello(hello, secret, index, count, role, gateway_challenge)
    return claim, shard_challenge, gateway_challenge


def test_a_gateway_that_knows_the_secret_is_accepted_and_learns_the_shards_highest_txn():
    claim, shard_challenge, gateway_challenge = gateway_claim()
    accepted = hs.check_claim(claim, SECRET, 1, 3, shard_challenge)
    welcome = hs.welcome(SECRET, 1, 3, shard_challenge, accepted, max_txn=4711)
    assert accepted.role == "gateway"
    assert hs.check_welcome(welcome, SECRET, 1, 3, shard_challenge, gateway_challenge) == 4711


def test_the_secret_itself_is_never_in_a_message():
    claim, shard_challenge, _ = gateway_claim()
    welcome = hs.welcome(SECRET, 1, 3, shard_challenge, hs.check_claim(
        claim, SECRET, 1, 3, shard_challenge), 0)
    assert SECRET.decode() not in repr(claim) + repr(welcome)


def test_a_wrong_secret_is_refused():
    claim, shard_challenge, _ = gateway_claim(secret=b"another secret of 32 bytes......")
    with pytest.raises(hs.HandshakeRefused, match="wrong cluster secret"):
        hs.check_claim(claim, SECRET, 1, 3, shard_challenge)


def test_a_claim_without_a_proof_is_refused():
    claim, shard_challenge, _ = gateway_claim()
    with pytest.raises(hs.HandshakeRefused, match="malformed"):
        hs.check_claim(claim[:-1], SECRET, 1, 3, shard_challenge)


def test_a_command_before_the_handshake_is_refused():
    with pytest.raises(hs.HandshakeRefused, match="before the handshake"):
        hs.check_claim([Frame.COMMAND, 1, 0, "ADD,alice,1.00"], SECRET, 1, 3, hs.challenge())


def test_a_proof_for_another_link_is_refused():
    claim, _, _ = gateway_claim()
    with pytest.raises(hs.HandshakeRefused, match="wrong cluster secret"):
        hs.check_claim(claim, SECRET, 1, 3, hs.challenge())  # a replay on a new link


def test_a_gateway_for_another_shard_index_refuses_the_shard():
    with pytest.raises(hs.HandshakeRefused, match="shard 1 of 3, this side for shard 2 of 3"):
        gateway_claim(index=2)


def test_a_gateway_with_another_shard_count_refuses_the_shard():
    with pytest.raises(hs.HandshakeRefused, match="shard 1 of 3, this side for shard 1 of 4"):
        gateway_claim(count=4)


def test_a_shard_refuses_a_claim_for_another_index():
    claim, shard_challenge, _ = gateway_claim()
    with pytest.raises(hs.HandshakeRefused, match="for shard 1 of 3, this side for shard 0 of 3"):
        hs.check_claim(claim, SECRET, 0, 3, shard_challenge)


def test_another_protocol_version_is_refused_both_ways():
    shard_challenge = hs.challenge()
    hello = hs.hello(1, 3, shard_challenge)
    hello[1] = hs.PROTOCOL_VERSION + 1
    with pytest.raises(hs.HandshakeRefused, match="protocol version"):
        hs.answer_hello(hello, SECRET, 1, 3, "gateway", hs.challenge())
    claim, shard_challenge, _ = gateway_claim()
    claim[1] = hs.PROTOCOL_VERSION + 1
    with pytest.raises(hs.HandshakeRefused, match="protocol version"):
        hs.check_claim(claim, SECRET, 1, 3, shard_challenge)


def test_a_shard_that_does_not_know_the_secret_is_refused_by_the_gateway():
    claim, shard_challenge, gateway_challenge = gateway_claim()
    accepted = hs.check_claim(claim, SECRET, 1, 3, shard_challenge)
    forged = hs.welcome(b"not the cluster secret, guessed.", 1, 3, shard_challenge, accepted, 0)
    with pytest.raises(hs.HandshakeRefused, match="does not know the cluster secret"):
        hs.check_welcome(forged, SECRET, 1, 3, shard_challenge, gateway_challenge)


def test_a_shards_refusal_reaches_the_gateway_with_its_reason():
    with pytest.raises(hs.HandshakeRefused, match="the shard refused: wrong cluster secret"):
        hs.check_welcome(hs.refused("wrong cluster secret"), SECRET, 1, 3, "a", "b")


def test_an_unknown_role_is_refused():
    claim, shard_challenge, _ = gateway_claim(role="admin")
    with pytest.raises(hs.HandshakeRefused, match="unknown role"):
        hs.check_claim(claim, SECRET, 1, 3, shard_challenge)


def test_a_short_secret_file_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "secret"
    path.write_text("short\n")
    with pytest.raises(ValueError, match="at least 16"):
        hs.read_secret(path)
    path.write_text(" " + SECRET.decode() + "\n")
    assert hs.read_secret(path) == SECRET


def test_a_missing_secret_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot read the cluster secret"):
        hs.read_secret(tmp_path / "nowhere")
