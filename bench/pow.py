"""Proof-of-work at the default difficulty: server verification µs per challenge, browser solve time.

Server: chalicelib.pow.verify_solution (and issue_challenge) timed with timeit at Settings'
default difficulty. Browser: Debian chromium (headless, Playwright, executable_path=/usr/bin/chromium)
loads the storefront's real worker (frontend/dist/pow-worker.js, built by `make site`) from a local
http.server on 127.0.0.1 and solves --solves real challenges issued by app.py's GET /api/pow/challenge
(chalice.test.Client, moto in-process), one fresh Worker per solve as the storefront does; every
nonce is then verified by the server code. Prints median/p95 solve time and hashes per second.

    .venv/bin/python bench/pow.py [--solves 20] [--difficulty N]
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import timeit
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from bench._lib import fake_aws_env, machine, pct, table  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run",
               "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"]
WORKER = ROOT / "frontend" / "dist" / "pow-worker.js"
PAGE = """<!doctype html><meta charset="utf-8"><title>pow bench</title>
<script>
// One solve with the storefront's protocol: post {type: "solve", challenge}, wait for {type: "solved"}.
window.solveOnce = ([challenge, script]) => new Promise((resolve, reject) => {
  const started = performance.now();
  const worker = new Worker(script, {type: script.includes("sync") ? "module" : "classic"});
  let progress = 0;
  worker.onmessage = (ev) => {
    const msg = ev.data || {};
    if (msg.type === "progress") progress++;
    else if (msg.type === "solved") {
      worker.terminate();
      resolve({ms: performance.now() - started, nonce: msg.nonce, tried: msg.tried, progress});
    } else if (msg.type === "error") { worker.terminate(); reject(new Error(msg.message)); }
  };
  worker.onerror = (ev) => { worker.terminate(); reject(new Error(ev.message || "worker failed")); };
  worker.postMessage({type: "solve", challenge});
});
</script>"""
# The same worker with crypto.subtle hidden, so it falls back to its bundled pure-JS SHA-256.
PURE_JS = 'Object.defineProperty(self, "crypto", {value: undefined, configurable: true});\nimportScripts("/pow-worker.js");\n'

# What-if: the storefront's own frontend/src/sha256.js in a synchronous loop (no promise per hash).
SYNC_JS = """import { sha256 } from "/sha256.js";
const enc = new TextEncoder();
self.onmessage = (ev) => {
  const c = ev.data.challenge, prefix = String(c.salt), need = Number(c.difficulty);
  for (let nonce = 0; ; nonce++) {
    const d = sha256(enc.encode(prefix + nonce));
    let bits = 0;
    for (const b of d) { if (b === 0) { bits += 8; continue; } bits += Math.clz32(b) - 24; break; }
    if (bits >= need) { self.postMessage({type: "solved", nonce, tried: nonce + 1}); return; }
  }
};
"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def server_costs(difficulty: int, repeat: int = 20_000) -> dict:
    from chalicelib import pow as pow_
    from chalicelib.tokens import Signer

    signer, now = Signer(secrets.token_hex(32)), 1_800_000_000_000
    challenge = pow_.issue_challenge(signer, "shp_bench", "drop", difficulty=difficulty, ttl_s=120, now_ms=now)
    nonce = pow_.solve(challenge)

    def verify() -> None:
        pow_.verify_solution(signer, challenge, nonce, shopper_id="shp_bench", drop_id="drop", now_ms=now + 900)

    def issue() -> None:
        pow_.issue_challenge(signer, "shp_bench", "drop", difficulty=difficulty, ttl_s=120, now_ms=now)

    runs = [timeit.timeit(verify, number=repeat) / repeat for _ in range(3)]
    python_solve_s = timeit.timeit(lambda: pow_.solve(challenge), number=1)
    return {"verify_us": min(runs) * 1e6, "issue_us": timeit.timeit(issue, number=repeat) / repeat * 1e6,
            "python_hps": (nonce + 1) / python_solve_s}


def issued_challenges(n: int, difficulty: int) -> tuple[list[dict], object, object]:
    """n challenges from app.py's GET /api/pow/challenge (moto in-process), and a verifier for nonces."""
    fake_aws_env()
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "STATE_MACHINE_ARN", "AUDIT_BUCKET"):
        os.environ.pop(var, None)
    os.environ.update(DROPS_TABLE="drops-bench", SIGNING_KEY=secrets.token_hex(32), OPERATOR_KEY=secrets.token_hex(16),
                      POW_DIFFICULTY=str(difficulty), RATE_LIMIT_CHALLENGE_SHOPPER="0", RATE_LIMIT_CHALLENGE_IP="0")
    import boto3
    from chalice.test import Client
    from moto import mock_aws

    from chalicelib import bootstrap
    from chalicelib import pow as pow_
    from chalicelib.tables import create_tables

    mock = mock_aws()
    mock.start()
    create_tables(boto3.client("dynamodb", region_name="us-east-1"), {"DropsTable": "drops-bench"})
    bootstrap.reset()
    import app as app_module

    client = Client(app_module.app).__enter__()
    svc = bootstrap.service()
    now = svc.clock()
    res = client.http.post("/api/drops", headers={"content-type": "application/json",
                                                  "x-operator-key": os.environ["OPERATOR_KEY"]},
                           body=json.dumps({"drop_id": "pow", "name": "PoW", "inventory": 1, "purchase_window": 60,
                                            "product": {"title": "Cap", "image_url": "", "price": 1},
                                            "registration_start": now - 1000, "registration_end": now + 3_600_000}))
    assert res.status_code == 201, res.body
    session = json.loads(client.http.post("/api/session").body)
    auth = {"authorization": f"Bearer {session['token']}"}
    challenges = []
    for _ in range(n):
        res = client.http.get("/api/pow/challenge?drop_id=pow", headers=auth)
        assert res.status_code == 200, res.body
        challenges.append(json.loads(res.body))

    def verify(challenge: dict, nonce: int) -> None:
        pow_.verify_solution(svc.signer, challenge, nonce, shopper_id=session["shopper_id"], drop_id="pow",
                             now_ms=svc.clock())

    return challenges, verify, mock


def browser_solves(challenges: list[dict], pure_js: int) -> tuple[list[dict], list[dict], list[dict]]:
    """The storefront's worker as built (crypto.subtle); then on the first pure_js challenges its JS fallback
    and, as a what-if, frontend/src/sha256.js in a synchronous loop."""
    from playwright.sync_api import sync_playwright

    site = Path(tempfile.mkdtemp(prefix="bench-pow-"))
    shutil.copy(WORKER, site / "pow-worker.js")
    (site / "pow-worker-purejs.js").write_text(PURE_JS)
    (site / "pow-worker-sync.js").write_text(SYNC_JS)
    shutil.copy(ROOT / "frontend" / "src" / "sha256.js", site / "sha256.js")
    (site / "index.html").write_text(PAGE)
    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/index.html")
                assert page.evaluate("window.isSecureContext && !!crypto.subtle"), "crypto.subtle unavailable"
                for script in ("/pow-worker.js", "/pow-worker-purejs.js", "/pow-worker-sync.js"):  # warm-up
                    page.evaluate("solveOnce", [{**challenges[0], "difficulty": 8}, script])
                subtle = [page.evaluate("solveOnce", [ch, "/pow-worker.js"]) for ch in challenges]
                js = [page.evaluate("solveOnce", [ch, "/pow-worker-purejs.js"]) for ch in challenges[:pure_js]]
                sync = [page.evaluate("solveOnce", [ch, "/pow-worker-sync.js"]) for ch in challenges[:pure_js]]
                return subtle, js, sync
            finally:
                browser.close()
    finally:
        httpd.shutdown()
        shutil.rmtree(site, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    from chalicelib.config import Settings

    default = Settings.__dataclass_fields__["pow_difficulty"].default
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solves", type=int, default=20)
    parser.add_argument("--pure-js", type=int, default=5, help="of those, solved again with the worker's JS SHA-256")
    parser.add_argument("--difficulty", type=int, default=default, help=f"bits (default {default}, chalicelib/config.py)")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    print(f"machine: {machine()}")
    cost = server_costs(args.difficulty)
    print(f"\nserver, difficulty {args.difficulty} bits: verify_solution {cost['verify_us']:.1f} µs per challenge "
          f"(issue_challenge {cost['issue_us']:.1f} µs); reference Python solver {cost['python_hps'] / 1e6:.2f} M hashes/s")
    if not Path(CHROMIUM).exists() or not WORKER.exists():
        missing = CHROMIUM if not Path(CHROMIUM).exists() else f"{WORKER} (run `make site`)"
        print(f"browser solve: SKIPPED, {missing} is missing")
        return 0
    challenges, verify, mock = issued_challenges(args.solves, args.difficulty)
    try:
        solves, js_solves, sync_solves = browser_solves(challenges, args.pure_js)
        for ch, s in [*zip(challenges, solves), *zip(challenges, js_solves), *zip(challenges, sync_solves)]:
            verify(ch, s["nonce"])  # raises if the browser's answer would be refused
    finally:
        mock.stop()
    ms = [s["ms"] for s in solves]
    hps = [s["tried"] / (s["ms"] / 1000) for s in solves]
    rows = [{"": "solve ms", "median": statistics.median(ms), "p95": pct(ms, 0.95), "min": min(ms), "max": max(ms)},
            {"": "hashes tried", "median": statistics.median(s["tried"] for s in solves),
             "p95": pct([s["tried"] for s in solves], 0.95), "min": min(s["tried"] for s in solves),
             "max": max(s["tried"] for s in solves)},
            {"": "hashes/s", "median": statistics.median(hps), "p95": pct(hps, 0.95), "min": min(hps), "max": max(hps)}]
    print(f"\nheadless chromium ({CHROMIUM}), frontend/dist/pow-worker.js, {len(solves)} server-issued challenges at "
          f"{args.difficulty} bits (expected work 2^{args.difficulty} = {2 ** args.difficulty:,} hashes), all verified:")
    print(table(rows, ["", "median", "p95", "min", "max"]))
    total_hps = sum(s["tried"] for s in solves) / (sum(ms) / 1000)
    print(f"overall {total_hps / 1e3:.0f} k hashes/s; median solve {statistics.median(ms):.0f} ms "
          f"(the server's bot score assumes a browser stays under POW_MAX_HPS = "
          f"{Settings.__dataclass_fields__['pow_max_hps'].default:,}/s)")
    if js_solves:
        k = len(js_solves)
        same = sum(s["tried"] for s in solves[:k]) / (sum(ms[:k]) / 1000)
        print(f"\non the first {k} challenges (crypto.subtle worker: {same / 1e3:.0f} k hashes/s):")
        for label, runs in (("the worker with crypto.subtle hidden (its bundled pure-JS SHA-256)", js_solves),
                            ("what-if: frontend/src/sha256.js in a synchronous loop", sync_solves)):
            run_ms = [s["ms"] for s in runs]
            print(f"  {label}: median solve {statistics.median(run_ms):.0f} ms, "
                  f"{sum(s['tried'] for s in runs) / (sum(run_ms) / 1000) / 1e3:.0f} k hashes/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
