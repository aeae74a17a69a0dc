"""Trust score layers, fingerprint check without a key, and fixed-window rate limits."""
from __future__ import annotations

import pytest

from chalicelib import bots, fingerprint, ratelimit
from chalicelib.domain.errors import RateLimited


def score(**kw):
    base = dict(pow_valid=True, elapsed_ms=1200, tried=100_000, fp_present=True, fp_confidence=0.5,
                fp_verified=False, interactions=3, page_ms=20_000)
    return bots.assess(**{**base, **kw})


# -- each layer alone ----------------------------------------------------------------
def test_pow_layer_is_all_or_nothing():
    assert bots.pow_points(True) == 30 and bots.pow_points(False) == 0


@pytest.mark.parametrize("confidence, verified, expected", [
    (0.99, True, 39.6), (0.5, True, 20), (0.5, False, 10), (0.3, False, 6),
    (0.7, False, 14), (1.0, False, 14),  # a claim above what the open-source agent reports buys nothing more
])
def test_fingerprint_layer(confidence, verified, expected):
    assert bots.fingerprint_points(confidence, present=True, verified=verified) == pytest.approx(expected)


def test_unverified_fingerprint_never_earns_more_than_half():
    for c in (0, 0.1, 0.5, 0.7, 0.9, 1.0, 5.0):
        assert bots.fingerprint_points(c, present=True, verified=False) <= bots.WEIGHTS["fingerprint"] / 2


def test_missing_or_bot_fingerprint_earns_nothing():
    assert bots.fingerprint_points(0.99, present=False, verified=True) == 0
    assert bots.fingerprint_points(0.99, present=True, verified=True, bot=True) == 0


@pytest.mark.parametrize("elapsed, tried, expected", [
    (-5, 1, 0.0),  # clock nonsense
    (10, 1, 0.0),  # under the floor: nothing human is that fast
    (50, 200_000, 0.0),  # 4 M hashes/s: a native solver, not a browser
    (999, 2_000_000, 0.0),  # still faster than any browser
    (200, 20_000, 0.5),  # a lucky browser solve: short but browser-paced
    (650, 100_000, 0.75),
    (1000, 131_072, 1.0), (4000, 131_072, 1.0), (60_000, 131_072, 1.0),
])
def test_server_timing(elapsed, tried, expected):
    assert bots.server_timing(elapsed, tried) == pytest.approx(expected)


def test_client_signals_add_evidence_but_never_replace_the_server_clock():
    assert bots.timing_points(1500, 100_000, interactions=5, page_ms=30_000) == 30
    assert bots.timing_points(1500, 100_000) == pytest.approx(24)
    assert bots.timing_points(1500, 100_000, interactions=5, page_ms=900) == pytest.approx(27)
    assert bots.timing_points(20, 100, interactions=10**6, page_ms=10**7) == 0  # lies cannot lift a too-fast answer


def test_max_hps_is_configurable():
    assert bots.server_timing(100, 100_000, max_hps=2_000_000) == 0.5
    assert bots.server_timing(100, 100_000, max_hps=500_000) == 0.0
    assert bots.server_timing(100, 100_000) == 0.0  # 1 M hashes/s: faster than the default allows


# -- the score -----------------------------------------------------------------------
def test_real_browser_without_a_key_passes():
    trust = score(elapsed_ms=1100, tried=131_072, fp_confidence=0.4, interactions=2)
    assert trust.parts == {"fingerprint": 8, "timing": 30, "pow": 30}
    assert trust.score == 68 and trust.passes(50)


@pytest.mark.parametrize("confidence", [0.3, 0.4, 0.5, 0.6, 0.7])
def test_a_lucky_fast_browser_solve_still_passes(confidence):
    trust = score(elapsed_ms=220, tried=25_000, fp_confidence=confidence)
    assert trust.passes(50), trust


def test_bare_script_fails():
    trust = score(elapsed_ms=50, tried=131_072, fp_present=False, fp_confidence=0, interactions=0, page_ms=0)
    assert trust.score == 30 and not trust.passes(50)
    assert "no fingerprint" in trust.reasons and any("too fast" in r for r in trust.reasons)


def test_script_with_a_faked_fingerprint_and_no_delay_fails():
    trust = score(elapsed_ms=60, tried=131_072, fp_confidence=1.0, interactions=7, page_ms=9000)
    assert trust.score == 44 and not trust.passes(50)


def test_verified_fingerprint_carries_the_layer():
    trust = score(fp_confidence=0.995, fp_verified=True)
    assert trust.parts["fingerprint"] == 40 and trust.score == 99


def test_trust_dict_is_storable():
    d = score().to_dict()
    assert {"score", "fingerprint", "timing", "pow", "elapsed_ms", "verified", "reasons"} <= set(d)
    assert all(isinstance(d[k], int) for k in ("score", "fingerprint", "timing", "pow", "elapsed_ms"))


# -- fingerprint without a key -------------------------------------------------------------
def test_fingerprint_without_a_key_takes_the_report_at_its_word():
    got = fingerprint.check({"visitor_id": "v1", "confidence": 0.6})
    assert got == fingerprint.FingerprintCheck("v1", 0.6, verified=False)
    assert fingerprint.check(None).reason == "no fingerprint"
    assert fingerprint.check({"visitor_id": "v1", "confidence": 7}).confidence == 1.0


def test_fingerprint_with_a_key_but_no_request_id_earns_nothing():
    got = fingerprint.check({"visitor_id": "v1", "confidence": 0.6}, api_key="secret")
    assert got.confidence == 0 and not got.verified and got.visitor_id == "v1"


# -- rate limits (DropStore.hit on moto) -----------------------------------------------------
def test_fixed_window_limit_and_retry_after(store):
    limit = ratelimit.Limit("register", "ip", 3, window_s=60)
    t0 = 1_800_000_000_000 - 1_800_000_000_000 % 60_000  # a window boundary
    assert [ratelimit.check(store, limit, "1.2.3.4", t0 + i) for i in range(3)] == [1, 2, 3]
    with pytest.raises(RateLimited) as exc:
        ratelimit.check(store, limit, "1.2.3.4", t0 + 45_500)
    assert exc.value.status == 429 and exc.value.details["retry_after"] == 15
    assert ratelimit.check(store, limit, "5.6.7.8", t0 + 45_500) == 1  # another key has its own count
    assert ratelimit.check(store, limit, "1.2.3.4", t0 + 60_000) == 1  # the next window starts afresh


def test_zero_turns_a_limit_off(store):
    limit = ratelimit.Limit("session", "ip", 0)
    assert all(ratelimit.check(store, limit, "ip", 1000) == 0 for _ in range(5))


@pytest.mark.parametrize("now, window, expected", [(0, 60, 60), (59_001, 60, 1), (59_999, 60, 1), (30_000, 60, 30)])
def test_retry_after_counts_whole_seconds_to_the_window_end(now, window, expected):
    assert ratelimit.retry_after(now, window) == expected


def test_a_missing_fingerprint_is_one_reason_not_two():
    fp = fingerprint.check(None)
    trust = bots.assess(pow_valid=True, elapsed_ms=2000, tried=1000, fp_present=False, fp_confidence=0,
                        fp_verified=False, fp_reason=fp.reason)
    assert trust.reasons.count("no fingerprint") == 1
