"""Settings from the environment; secrets from the environment or AWS Secrets Manager."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


class ConfigError(RuntimeError):
    """A required setting is missing."""


def _secret(name: str) -> str:
    """NAME from the environment, else the Secrets Manager secret named by NAME_SECRET_ID."""
    value = os.environ.get(name)
    if value:
        return value
    secret_id = os.environ.get(f"{name}_SECRET_ID")
    if secret_id:
        import boto3  # only when a secret really lives in Secrets Manager

        return boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    raise ConfigError(f"{name} (or {name}_SECRET_ID) must be set; `make dev` generates dev values")


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class Settings:
    table_name: str
    signing_key: str
    operator_key: str
    pow_difficulty: int = 17
    trust_threshold: int = 50
    registration_grace_ms: int = 2000
    poll_ms: int = 5000
    count_every_ms: int = 30_000  # how often the workflow recounts entries during registration
    session_ttl_s: int = 30 * 24 * 3600
    stream_token_ttl_s: int = 300
    challenge_ttl_s: int = 120
    device_limit: bool = True
    allowed_origin: str = ""
    fingerprint_api_key: str = ""
    state_machine_arn: str = ""
    audit_bucket: str = ""
    fingerprint_api_url: str = ""  # overrides the Fingerprint Server API host (tests point it at a fake)
    pow_max_hps: int = 500_000  # hashes/s a browser is not expected to beat (3x the 17-bit calibration)
    rate_window_s: int = 60
    rate_session_ip: int = 20  # per window; 0 turns a limit off
    rate_challenge_shopper: int = 30
    rate_challenge_ip: int = 60
    rate_register_shopper: int = 10
    rate_register_ip: int = 30

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            table_name=os.environ.get("DROPS_TABLE", "drops"),
            signing_key=_secret("SIGNING_KEY"),
            operator_key=_secret("OPERATOR_KEY"),
            pow_difficulty=_int("POW_DIFFICULTY", 17),
            trust_threshold=_int("TRUST_THRESHOLD", 50),
            registration_grace_ms=_int("REGISTRATION_GRACE_MS", 2000),
            poll_ms=_int("WORKFLOW_POLL_MS", 5000),
            count_every_ms=_int("REGISTRATION_COUNT_MS", 30_000),
            session_ttl_s=_int("SESSION_TTL_S", 30 * 24 * 3600),
            stream_token_ttl_s=_int("STREAM_TOKEN_TTL_S", 300),
            challenge_ttl_s=_int("CHALLENGE_TTL_S", 120),
            device_limit=os.environ.get("DEVICE_LIMIT", "1") not in ("0", "false", "off"),
            allowed_origin=os.environ.get("ALLOWED_ORIGIN", ""),
            fingerprint_api_key=os.environ.get("FINGERPRINT_API_KEY", ""),
            state_machine_arn=os.environ.get("STATE_MACHINE_ARN", ""),
            audit_bucket=os.environ.get("AUDIT_BUCKET", ""),
            fingerprint_api_url=os.environ.get("FINGERPRINT_API_URL", ""),
            pow_max_hps=_int("POW_MAX_HPS", 500_000),
            rate_window_s=max(1, _int("RATE_LIMIT_WINDOW_S", 60)),
            rate_session_ip=_int("RATE_LIMIT_SESSION_IP", 20),
            rate_challenge_shopper=_int("RATE_LIMIT_CHALLENGE_SHOPPER", 30),
            rate_challenge_ip=_int("RATE_LIMIT_CHALLENGE_IP", 60),
            rate_register_shopper=_int("RATE_LIMIT_REGISTER_SHOPPER", 10),
            rate_register_ip=_int("RATE_LIMIT_REGISTER_IP", 30),
        )


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
