"""SHA-256 proof-of-work challenges, HMAC-signed, expiring, bound to one shopper and one drop.

Why not the altcha library (2.3, evaluated): its v1 puzzle is "find the secret number n <= max_number
with SHA-256(salt + n) == challenge" and its v2 puzzle a key-derivation prefix search; neither is the
storefront's "SHA-256(salt + nonce) with `difficulty` leading zero bits". It could carry the binding
(v1 salt params, v2 `data`) and an expiry, but it checks expiry against time.time() (our clock is
injected), signs no issue time (the timing layer needs one the client cannot change) and compares
signatures with ==. So: hashlib + hmac, one signed field list, constant-time comparison.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from chalicelib.domain.errors import BotSuspected, InvalidInput
from chalicelib.tokens import Signer

ALGORITHM = "SHA-256"


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def _mac(signer: Signer, fields: list[str]) -> str:
    return hmac.new(signer.key("pow"), "|".join(fields).encode(), hashlib.sha256).hexdigest()


def issue_challenge(signer: Signer, shopper_id: str, drop_id: str, *, difficulty: int, ttl_s: int, now_ms: int) -> dict:
    salt = f"{drop_id}.{signer.pseudonym(shopper_id)[:16]}.{now_ms}.{secrets.token_hex(8)}."
    expires = now_ms + ttl_s * 1000
    fields = [ALGORITHM, salt, str(difficulty), str(now_ms), str(expires), drop_id, shopper_id]
    return {
        "algorithm": ALGORITHM,
        "challenge": hashlib.sha256(salt.encode()).hexdigest(),
        "salt": salt,
        "difficulty": difficulty,
        "issued": now_ms,
        "expires": expires,
        "drop_id": drop_id,
        "signature": _mac(signer, fields),
    }


def verify_solution(signer: Signer, challenge: object, nonce: object, *, shopper_id: str, drop_id: str, now_ms: int) -> int:
    """Check a solved challenge; returns the server time (ms) it was issued at."""
    if not isinstance(challenge, dict) or type(nonce) is not int or not 0 <= nonce < 2**53:
        raise InvalidInput("pow must be {challenge: {...}, nonce: <int>}")
    try:
        salt, difficulty = str(challenge["salt"]), int(challenge["difficulty"])
        issued, expires = int(challenge["issued"]), int(challenge["expires"])
        signature = str(challenge["signature"]).encode()
        salt.encode()  # a lone surrogate (a legal JSON escape) cannot be hashed: UnicodeEncodeError
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput("pow challenge is malformed") from exc
    fields = [ALGORITHM, salt, str(difficulty), str(issued), str(expires), drop_id, shopper_id]
    if not hmac.compare_digest(_mac(signer, fields).encode(), signature):  # bytes: str needs ASCII
        raise BotSuspected("challenge signature, shopper or drop mismatch")
    if now_ms > expires:
        raise BotSuspected("challenge expired")
    if leading_zero_bits(hashlib.sha256(f"{salt}{nonce}".encode()).digest()) < difficulty:
        raise BotSuspected("proof-of-work does not meet the difficulty")
    return issued


def solve(challenge: dict) -> int:
    """Reference solver (tests, benchmarks, the CLI demo)."""
    salt, difficulty = challenge["salt"], int(challenge["difficulty"])
    nonce = 0
    while leading_zero_bits(hashlib.sha256(f"{salt}{nonce}".encode()).digest()) < difficulty:
        nonce += 1
    return nonce
