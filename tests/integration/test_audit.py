"""A real drop on moto, audited through the API and checked by the standalone verifier."""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import pytest

from chalicelib import fairness, lottery
from chalicelib.audit import BeaconPending, LotteryPending, read_entries
from chalicelib.service import DropService, draw_result
from tests.conftest import drop_spec
from verify import verify_drop

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "verify" / "verify_drop.py"
SHOPPERS = [f"shp_{i:03d}" for i in range(30)]


def _quiet(_: str) -> None:
    pass


def _register_all(svc: DropService, drop_id: str = "jacket") -> None:
    for i, sid in enumerate(SHOPPERS):
        svc.register(drop_id, sid, tickets=1 + (i * 7) % 10, rollover=0)


@pytest.fixture
def api(env, monkeypatch, clock):
    """app.py behind chalice.test.Client, its service on the test clock."""
    from chalice.test import Client

    import app as app_module
    from chalicelib import bootstrap

    monkeypatch.setenv("REGISTRATION_GRACE_MS", "0")
    svc = bootstrap.service()
    svc.clock = clock
    with Client(app_module.app) as client:
        yield client, svc


def _get(client, path: str, token: str | None = None, operator: str | None = None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if operator:
        headers["x-operator-key"] = operator
    res = client.http.get(path, headers=headers)
    return res.status_code, json.loads(res.body)


def _put(client, path: str, body: dict, operator: str):
    res = client.http.put(path, headers={"x-operator-key": operator, "content-type": "application/json"},
                          body=json.dumps(body).encode())
    return res.status_code, json.loads(res.body)


@pytest.fixture
def drawn(api, clock):
    """A drop of 5 units and 30 shoppers with 1..10 tickets, drawn; its audit as the API serves it."""
    client, svc = api
    svc.create_drop(drop_spec(clock, inventory=5))
    _register_all(svc)
    assert _get(client, "/api/drop/jacket/audit") == (409, {"error": "lottery_pending",
                                                           "message": "The lottery has not run yet; the audit is published with the results."})
    clock.advance(61_000)
    assert svc.run_lottery("jacket")["ran"]
    status, audit = _get(client, "/api/drop/jacket/audit")
    assert status == 200
    return client, svc, audit


def test_the_verifier_accepts_a_real_drop_and_matches_the_server_bit_for_bit(drawn):
    client, svc, audit = drawn
    entries = audit["entries"]
    assert len(entries) == audit["entries_count"] == 30 and len(audit["winners"]) == 5 and len(audit["waitlist"]) == 25
    summary = verify_drop.verify(audit, entries, say=_quiet)
    participants = {p.pseudonym: p for p in svc.store.participants("jacket")}
    server = draw_result(svc.store.get_secret("jacket"), {k: p.tickets for k, p in participants.items()})
    assert summary["ranking"] == server["ranking"] == audit["winners"] + audit["waitlist"]
    assert [participants[s].rank for s in summary["ranking"]] == list(range(30))
    assert audit["seed"] == server["seed"] and audit["root"] == server["root"]
    assert audit["commitment"] == _get(client, "/api/drop/jacket/status")[1]["commitment"]
    assert verify_drop.lottery.rank is not lottery.rank  # the verifier loaded the files itself ...
    assert Path(verify_drop.lottery.__file__).resolve() == Path(lottery.__file__).resolve()  # ... the same files


def test_each_shopper_gets_a_proof_on_me_that_the_verifier_accepts(drawn, tmp_path):
    client, svc, audit = drawn
    seen = set()
    for sid in SHOPPERS[:8]:
        token = svc.signer.issue("shopper", {"sub": sid}, ttl_s=60)
        status, me = _get(client, "/api/drop/jacket/me", token)
        assert status == 200 and me["pseudonym"] == svc.signer.pseudonym(sid) == me["inclusion_proof"]["pseudonym"]
        summary = verify_drop.verify(audit, audit["entries"], proof=me, say=_quiet)
        expected_rank = svc.store.get_participant("jacket", sid).rank + 1
        assert summary["position"] == expected_rank
        seen.add(me["pseudonym"])
    assert len(seen) == 8
    (tmp_path / "audit.json").write_text(json.dumps(audit))
    (tmp_path / "entries.json").write_text(json.dumps(audit["entries"]))
    (tmp_path / "proof.json").write_text(json.dumps(me))
    # -I -S: no site-packages, so the verifier runs on the standard library alone
    run = subprocess.run([sys.executable, "-I", "-S", str(VERIFIER), "--audit", str(tmp_path / "audit.json"), "--entries",
                          str(tmp_path / "entries.json"), "--pseudonym", me["pseudonym"], "--proof",
                          str(tmp_path / "proof.json")], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "PASS" in run.stdout and f"position {expected_rank}" in run.stdout
    bad = copy.deepcopy(me)
    bad["inclusion_proof"]["path"][0]["hash"] = "00" * 32
    (tmp_path / "proof.json").write_text(json.dumps(bad))
    run = subprocess.run([sys.executable, "-I", "-S", str(VERIFIER), "--audit", str(tmp_path / "audit.json"),
                          "--proof", str(tmp_path / "proof.json")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "inclusion proof does not lead to the published root" in run.stderr


def test_the_proof_on_me_is_stored_with_the_rank_so_me_reads_no_other_entry(drawn, monkeypatch):
    """At a million entries, rebuilding the tree on a shopper's /me would read every entry."""
    from chalicelib import audit as audit_module

    client, svc, audit = drawn
    entries = {p: t for p, t in audit["entries"]}
    audit_module._TREES.clear()
    monkeypatch.setattr(svc.store, "participants", lambda *_: pytest.fail("/me read every entry"))
    for sid in SHOPPERS[:6]:
        token = svc.signer.issue("shopper", {"sub": sid}, ttl_s=60)
        status, me = _get(client, "/api/drop/jacket/me", token)
        pseudonym = svc.signer.pseudonym(sid)
        assert status == 200 and me["inclusion_proof"]["path"] == fairness.merkle_proof(entries.items(), pseudonym)
        stored = svc.store.get_participant("jacket", sid)
        assert fairness.decode_path(stored.proof) == me["inclusion_proof"]["path"]
        assert me["inclusion_proof"]["root"] == audit["root"]


def test_me_has_no_proof_before_the_draw(api, clock):
    client, svc = api
    svc.create_drop(drop_spec(clock))
    svc.register("jacket", "shp_a", tickets=2, rollover=0)
    status, me = _get(client, "/api/drop/jacket/me", svc.signer.issue("shopper", {"sub": "shp_a"}, ttl_s=60))
    assert status == 200 and "inclusion_proof" not in me and "pseudonym" not in me


def _swap(seq: list, i: int, j: int) -> None:
    seq[i], seq[j] = seq[j], seq[i]


TAMPERING = {
    "an entry's tickets": lambda a, e, p: e[3].__setitem__(1, e[3][1] % 10 + 1),
    "a dropped entry": lambda a, e, p: e.pop(7),
    "an added entry": lambda a, e, p: e.append(["f" * 32, 1]),
    "the secret": lambda a, e, p: a.__setitem__("secret", "00" * 32),
    "the commitment": lambda a, e, p: a.__setitem__("commitment", hashlib.sha256(b"x").hexdigest()),
    "the root": lambda a, e, p: a.__setitem__("root", "11" * 32),
    "the seed": lambda a, e, p: a.__setitem__("seed", "22" * 32),
    "a beacon": lambda a, e, p: a.__setitem__("beacon", {"source": "other", "round": 1, "value": "33" * 32}),
    "two winners swapped": lambda a, e, p: _swap(a["winners"], 0, 1),
    "a winner and a waitlisted shopper swapped": lambda a, e, p: _swap_lists(a),
    "one winner fewer": lambda a, e, p: a["waitlist"].insert(0, a["winners"].pop()),
    "a proof hash": lambda a, e, p: p["path"][1].__setitem__("hash", "44" * 32),
    "a proof side": lambda a, e, p: p["path"][0].__setitem__("side", "right" if p["path"][0]["side"] == "left" else "left"),
    "the proof's tickets": lambda a, e, p: p.__setitem__("tickets", p["tickets"] + 1),
}


def _swap_lists(audit: dict) -> None:
    audit["winners"][-1], audit["waitlist"][0] = audit["waitlist"][0], audit["winners"][-1]


@pytest.mark.parametrize("what", sorted(TAMPERING))
def test_changing_anything_makes_the_verifier_fail(drawn, what):
    client, svc, audit = drawn
    proof = svc.inclusion_proof("jacket", SHOPPERS[4])
    audit, entries, proof = copy.deepcopy(audit), copy.deepcopy(audit["entries"]), copy.deepcopy(proof)
    TAMPERING[what](audit, entries, proof)
    with pytest.raises(verify_drop.Failed):
        verify_drop.verify(audit, entries, proof=proof, say=_quiet)


def test_the_audit_is_written_once_however_often_the_lottery_runs(drawn, clock):
    from chalicelib.domain.drop import Phase

    client, svc, audit = drawn
    stored = svc.store.get_audit("jacket", audit["commitment"])
    svc.store.set_phase("jacket", (Phase.PURCHASE,), Phase.LOTTERY)  # as if the first run died before the end
    clock.advance(5_000)
    svc.run_lottery("jacket")
    assert svc.store.get_audit("jacket", audit["commitment"]) == stored  # same item, drawn_at unchanged
    assert _get(client, "/api/drop/jacket/audit") == (200, audit)


def test_a_recreated_drop_does_not_serve_the_old_audit(drawn, clock):
    client, svc, old = drawn
    svc.reset_drop("jacket")
    svc.create_drop(drop_spec(clock))
    clock.advance(2_000)  # past the service's 1 s drop cache
    assert _get(client, "/api/drop/jacket/audit")[0] == 409
    with pytest.raises(LotteryPending):
        svc.audit("jacket")
    _register_all(svc)  # the same shoppers again: the same entries and root, a new secret
    clock.advance(61_000)
    svc.run_lottery("jacket")
    status, again = _get(client, "/api/drop/jacket/audit")
    assert status == 200 and again["root"] == old["root"] and again["seed"] != old["seed"]
    verify_drop.verify(again, again["entries"], say=_quiet)


def test_entries_go_to_s3_when_a_bucket_is_configured(service, clock):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="audit-test")
    svc = dataclasses.replace(service, settings=dataclasses.replace(service.settings, audit_bucket="audit-test"))
    svc.create_drop(drop_spec(clock, inventory=4))
    _register_all(svc)
    clock.advance(61_000)
    svc.run_lottery("jacket")
    audit = svc.audit("jacket")
    assert "entries" not in audit
    assert audit["entries_url"] == "/audits/jacket/entries.json"  # same origin: CloudFront /audits/* -> bucket
    entries = read_entries("audit-test", "jacket")
    assert entries == sorted(entries) and len(entries) == 30
    verify_drop.verify(audit, entries, say=_quiet)


# -- beacon ---------------------------------------------------------------------------------------
def _first_round_after(ms: int) -> int:
    genesis, period = fairness.DRAND_CHAINS["drand-quicknet"]
    return (ms // 1000 - genesis) // period + 2


@pytest.fixture
def beacon_drop(api, clock):
    """A drop naming a drand-quicknet round, drawn once the round's value is recorded."""
    client, svc = api
    op = svc.settings.operator_key
    spec = drop_spec(clock, inventory=5)
    svc.create_drop(spec)
    round_no = _first_round_after(spec["registration_end"])
    assert _put(client, "/api/drop/jacket/beacon", {"source": "drand-quicknet", "round": round_no - 1}, op)[0] == 400
    assert _put(client, "/api/drop/jacket/beacon", {"source": "drand-quicknet", "round": round_no}, "wrong")[0] == 403
    status, view = _put(client, "/api/drop/jacket/beacon", {"source": "drand-quicknet", "round": round_no}, op)
    assert status == 200 and view["beacon"]["round"] == round_no and view["root"] is None
    assert _put(client, "/api/drop/jacket/beacon", {"source": "drand-quicknet", "round": round_no + 5}, op)[0] == 409
    _register_all(svc)
    signature = hashlib.sha256(b"a bls signature stands in here").hexdigest() * 3
    value = hashlib.sha256(bytes.fromhex(signature)).hexdigest()
    status, err = _put(client, "/api/drop/jacket/beacon", {"value": value}, op)
    assert (status, err["error"]) == (409, "invalid_phase")  # not while registration is open
    clock.advance(61_000)
    with pytest.raises(BeaconPending):
        svc.run_lottery("jacket")
    status, view = _get(client, "/api/drop/jacket/beacon")
    assert view["root"] and view["entries"] == 30 and view["beacon"].get("value") is None
    assert _get(client, "/api/drop/jacket/audit")[0] == 409
    clock.now = fairness.beacon_round_time("drand-quicknet", round_no) * 1000 + 500
    assert _put(client, "/api/drop/jacket/beacon", {"value": value}, op)[0] == 200
    assert _put(client, "/api/drop/jacket/beacon", {"value": "55" * 32}, op)[0] == 409
    assert svc.run_lottery("jacket")["ran"]
    status, audit = _get(client, "/api/drop/jacket/audit")
    assert status == 200 and audit["root"] == view["root"]
    return client, svc, audit, signature


def test_a_beacon_drop_verifies_and_its_beacon_is_bound_into_the_seed(beacon_drop):
    client, svc, audit, _ = beacon_drop
    assert audit["beacon"]["source"] == "drand-quicknet" and len(audit["beacon"]["value"]) == 64
    verify_drop.verify(audit, audit["entries"], say=_quiet)
    for change in ({"value": "66" * 32}, {"round": audit["beacon"]["round"] + 1}, None):
        tampered = copy.deepcopy(audit)
        tampered["beacon"] = {**audit["beacon"], **change} if change else None
        with pytest.raises(verify_drop.Failed):
            verify_drop.verify(tampered, audit["entries"], say=_quiet)


def test_a_beacon_round_public_before_entries_froze_is_refused(beacon_drop):
    _, _, audit, _ = beacon_drop
    early = copy.deepcopy(audit)
    early["beacon"]["round"] = _first_round_after(audit["frozen_at"]) - 3
    early["seed"] = fairness.draw_seed(early["secret"], early["root"], fairness.beacon_material(early["beacon"]))
    with pytest.raises(verify_drop.Failed, match="public before the entries froze"):
        verify_drop.verify(early, audit["entries"], say=_quiet)


class _Files(http.server.BaseHTTPRequestHandler):
    routes: dict[str, object] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = self.routes.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body if body is not None else {"error": "not_found"}).encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_files():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield _Files.routes, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    _Files.routes.clear()


def test_the_cli_fetches_the_audit_proof_and_drand_round_over_http(beacon_drop, http_files, capsys):
    client, svc, audit, signature = beacon_drop
    routes, base = http_files
    token = svc.signer.issue("shopper", {"sub": SHOPPERS[9]}, ttl_s=60)
    me = _get(client, "/api/drop/jacket/me", token)[1]
    chain = verify_drop.DRAND_CHAIN_HASH["drand-quicknet"]
    routes.update({
        "/api/drop/jacket/audit": audit, "/api/drop/jacket/me": me,
        f"/drand/{chain}/public/{audit['beacon']['round']}": {"round": audit["beacon"]["round"],
                                                             "randomness": audit["beacon"]["value"], "signature": signature},
    })
    args = ["--url", f"{base}/api/drop/jacket", "--token", token, "--check-drand", "--drand-url", f"{base}/drand",
            "--commitment", audit["commitment"]]
    assert verify_drop.main(args) == 0
    out = capsys.readouterr().out
    assert "your entry" in out and "drand round" in out and "PASS" in out
    routes[f"/drand/{chain}/public/{audit['beacon']['round']}"]["randomness"] = "77" * 32
    assert verify_drop.main(args) == 1
    assert "not drand's randomness" in capsys.readouterr().err
    assert verify_drop.main(["--url", f"{base}/api/drop/other"]) == 1
