"""Proof-of-work challenges: binding to shopper and drop, expiry, signature, difficulty."""
from __future__ import annotations

import hashlib

import pytest

from chalicelib import pow as pow_
from chalicelib.domain.errors import BotSuspected, InvalidInput
from chalicelib.tokens import Signer

NOW = 1_800_000_000_000


@pytest.fixture
def signer():
    return Signer("k" * 32)


@pytest.fixture
def solved(signer):
    challenge = pow_.issue_challenge(signer, "shp_a", "drop-a", difficulty=8, ttl_s=120, now_ms=NOW)
    return challenge, pow_.solve(challenge)


def verify(signer, challenge, nonce, shopper="shp_a", drop="drop-a", now=NOW + 1500):
    return pow_.verify_solution(signer, challenge, nonce, shopper_id=shopper, drop_id=drop, now_ms=now)


def test_leading_zero_bits_counts_bits_not_bytes():
    assert pow_.leading_zero_bits(b"\x00\x00\xff") == 16
    assert pow_.leading_zero_bits(b"\x00\x01") == 15
    assert pow_.leading_zero_bits(b"\x80") == 0
    assert pow_.leading_zero_bits(b"\x00\x00") == 16


def test_challenge_shape_is_what_the_storefront_solves(signer):
    c = pow_.issue_challenge(signer, "shp_a", "drop-a", difficulty=17, ttl_s=120, now_ms=NOW)
    assert set(c) == {"algorithm", "challenge", "salt", "difficulty", "issued", "expires", "drop_id", "signature"}
    assert c["algorithm"] == "SHA-256" and c["difficulty"] == 17 and c["issued"] == NOW
    assert c["expires"] == NOW + 120_000 and c["drop_id"] == "drop-a"
    assert c["challenge"] == hashlib.sha256(c["salt"].encode()).hexdigest()
    assert "shp_a" not in c["salt"]  # the shopper id is bound by the signature, not disclosed


def test_solution_meets_difficulty_and_verifies_to_issue_time(signer, solved):
    challenge, nonce = solved
    digest = hashlib.sha256(f"{challenge['salt']}{nonce}".encode()).digest()
    assert pow_.leading_zero_bits(digest) >= 8
    assert verify(signer, challenge, nonce) == NOW


def test_each_challenge_is_fresh(signer):
    a = pow_.issue_challenge(signer, "shp_a", "drop-a", difficulty=8, ttl_s=120, now_ms=NOW)
    b = pow_.issue_challenge(signer, "shp_a", "drop-a", difficulty=8, ttl_s=120, now_ms=NOW)
    assert a["salt"] != b["salt"] and a["signature"] != b["signature"]


@pytest.mark.parametrize("shopper, drop", [("shp_b", "drop-a"), ("shp_a", "drop-b"), ("shp_b", "drop-b")])
def test_solution_for_one_shopper_and_drop_is_refused_for_another(signer, solved, shopper, drop):
    challenge, nonce = solved
    with pytest.raises(BotSuspected):
        verify(signer, challenge, nonce, shopper=shopper, drop=drop)


def test_expired_challenge_is_refused(signer, solved):
    challenge, nonce = solved
    assert verify(signer, challenge, nonce, now=challenge["expires"]) == NOW  # the last valid ms
    with pytest.raises(BotSuspected, match="expired"):
        verify(signer, challenge, nonce, now=challenge["expires"] + 1)


@pytest.mark.parametrize("field, value", [
    ("difficulty", 1), ("issued", NOW + 60_000), ("expires", NOW + 10**9), ("salt", "x."),
    ("signature", "0" * 64),
])
def test_tampered_or_forged_challenge_is_refused(signer, solved, field, value):
    challenge, nonce = solved
    with pytest.raises(BotSuspected):
        verify(signer, {**challenge, field: value}, nonce)


def test_challenge_signed_with_another_key_is_refused(signer):
    forged = pow_.issue_challenge(Signer("attacker-key-0123456789"), "shp_a", "drop-a", difficulty=1, ttl_s=600, now_ms=NOW)
    with pytest.raises(BotSuspected):
        verify(signer, forged, pow_.solve(forged))


def test_wrong_nonce_is_refused(signer, solved):
    challenge, nonce = solved
    bad = next(n for n in range(10_000) if pow_.leading_zero_bits(
        hashlib.sha256(f"{challenge['salt']}{n}".encode()).digest()) < 8)
    with pytest.raises(BotSuspected, match="difficulty"):
        verify(signer, challenge, bad)


@pytest.mark.parametrize("challenge, nonce", [
    ("not a dict", 1), ({}, 1), ({"salt": "s"}, 1), ({"salt": "s", "difficulty": "x", "issued": 1, "expires": 2,
                                                       "signature": "s"}, 1),
    ({"salt": "s"}, -1), ({"salt": "s"}, 2**53), ({"salt": "s"}, "12"), ({"salt": "s"}, True),
])
def test_malformed_input_is_invalid_not_a_crash(signer, challenge, nonce):
    with pytest.raises(InvalidInput):
        verify(signer, challenge, nonce)
