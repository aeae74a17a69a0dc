"""Signed tokens (JWT, HS256) for shoppers, purchases and streams, one derived key per purpose."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import jwt

from chalicelib.domain.errors import TokenExpired, Unauthorized

_ALG = "HS256"
PURPOSES = ("shopper", "purchase", "stream", "pow", "pseudonym", "fingerprint")


class Signer:
    """Issues and verifies tokens; a key per purpose so one token never passes as another."""

    def __init__(self, master_key: str) -> None:
        if len(master_key) < 16:
            raise ValueError("signing key too short")
        self._keys = {p: hmac.new(master_key.encode(), p.encode(), hashlib.sha256).digest() for p in PURPOSES}

    def key(self, purpose: str) -> bytes:
        return self._keys[purpose]

    def issue(self, purpose: str, claims: dict, ttl_s: float | None = None, exp_ms: int | None = None) -> str:
        now = time.time()
        body = {**claims, "typ": purpose, "iat": int(now), "jti": secrets.token_urlsafe(12)}
        body["exp"] = exp_ms / 1000 if exp_ms is not None else now + (ttl_s or 60)
        return jwt.encode(body, self._keys[purpose], algorithm=_ALG)

    def verify(self, purpose: str, token: str | None, *, allow_expired: bool = False) -> dict:
        """The claims of a genuine token of this purpose; allow_expired skips only the exp check."""
        if not token or not isinstance(token, str) or len(token) > 4096:
            raise Unauthorized("A valid token is required.")
        options = {"require": ["exp", "typ"], "verify_exp": not allow_expired}
        try:
            claims = jwt.decode(token, self._keys[purpose], algorithms=[_ALG], options=options)
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired("The token has expired.") from exc
        except (jwt.PyJWTError, ValueError) as exc:  # ValueError: text that is not UTF-8 (lone surrogates)
            raise Unauthorized("The token is not valid.") from exc
        if claims.get("typ") != purpose:
            raise Unauthorized("The token is not valid here.")
        return claims

    def pseudonym(self, shopper_id: str) -> str:
        """A stable, private id for public audit data."""
        return hmac.new(self._keys["pseudonym"], shopper_id.encode(), hashlib.sha256).hexdigest()[:32]


def new_shopper_id() -> str:
    return "shp_" + secrets.token_hex(12)
