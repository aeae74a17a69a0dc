"""Real-browser fixtures: the embedded stack (`python -m devstack.dev`), Debian chromium, shoppers.

Every page a test opens is watched: a request to any host other than 127.0.0.1/localhost or an
uncaught page error fails the test. Each page records, from before the app runs, every change of
a `data-state` attribute (the page state, the proof-of-work bar, the connection indicator) and
every Server-Sent Event it received, so a test can assert the journey it saw, not only where it
ended. Screenshots go to test-output/screenshots/<test>-<nn>-<what>.png (git-ignored).
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx
import pytest

from devstack.spawn import DevStack

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run",
               "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"]
LOOPBACK = {"127.0.0.1", "localhost"}
POW_DIFFICULTY = 14  # ~16k hashes: a few progress steps in the worker, well under a second
WAIT_MS = 30_000  # upper bound for anything the workflow does (close, draw, complete)

# Installed before any page script: records data-state changes and SSE events into window.__rec.
RECORDER = r"""
(() => {
  const rec = { states: [], sse: [], streams: 0, workers: [] };
  Object.defineProperty(window, "__rec", { value: rec });
  const note = (el) => rec.states.push({
    id: el.getAttribute("data-testid") || el.tagName.toLowerCase(), state: el.getAttribute("data-state"),
    tried: el.getAttribute("data-tried"), expected: el.getAttribute("data-expected"), shown: !el.hidden,
    text: (el.querySelector("[data-testid=pow-count]") || {}).textContent || "", t: Date.now() });
  new MutationObserver((list) => { for (const m of list) note(m.target); })
    .observe(document, { subtree: true, attributes: true, attributeFilter: ["data-state", "data-tried"] });
  const ES = window.EventSource;
  window.EventSource = class extends ES {
    constructor(url, opts) {
      super(url, opts);
      const n = ++rec.streams;
      rec.sse.push({ n, type: "new", t: Date.now() });
      this.addEventListener("open", () => rec.sse.push({ n, type: "open", t: Date.now() }));
      this.addEventListener("error", () => rec.sse.push({ n, type: "error", ready: this.readyState, t: Date.now() }));
      for (const type of ["drop", "me"]) {
        this.addEventListener(type, (ev) => rec.sse.push({ n, type, data: JSON.parse(ev.data), t: Date.now() }));
      }
    }
  };
  const W = window.Worker;
  window.Worker = class extends W {
    constructor(url, opts) { super(url, opts); rec.workers.push(String(url)); }
  };
})();
"""


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT_MS / 1000, every: float = 0.2) -> Any:
    """Poll predicate until it returns something truthy (an upper bound, never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


@dataclass
class Stack:
    """The running embedded stack and its operator API."""

    base: str
    dev_dir: Path
    operator_key: str
    client: httpx.Client

    def op(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, headers={"X-Operator-Key": self.operator_key}, **kwargs)

    def create_drop(self, drop_id: str, *, opens_in_s: float = 0, open_s: float = 120, **overrides: Any) -> dict:
        start = now_ms() + int(opens_in_s * 1000)
        spec = {"drop_id": drop_id, "name": "Test drop", "inventory": 1,
                "product": {"title": "Alpha SV Jacket", "image_url": "/jacket.svg", "price": 800},
                "registration_start": start, "registration_end": start + int(open_s * 1000),
                "purchase_window": 60, **overrides}
        resp = self.op("POST", "/api/drops", json=spec)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def close_registration(self, drop_id: str) -> dict:
        """POST /api/drop/{id}/lottery: registration closes now and the workflow draws by itself."""
        resp = self.op("POST", f"/api/drop/{drop_id}/lottery")
        assert resp.status_code == 200, resp.text
        return resp.json()

    def status(self, drop_id: str) -> dict:
        resp = self.client.get(f"/api/drop/{drop_id}/status")
        assert resp.status_code == 200, resp.text
        return resp.json()

    def participants(self, drop_id: str) -> dict:
        resp = self.op("GET", f"/api/drop/{drop_id}/participants")
        assert resp.status_code == 200, resp.text
        return resp.json()

    def wait_phase(self, drop_id: str, phase: str) -> dict:
        return wait_until(lambda: (s := self.status(drop_id))["phase"] == phase and s, f"{drop_id} in {phase}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Stack:
    if not (ROOT / "frontend" / "dist" / "index.html").is_file():
        pytest.fail("frontend/dist is not built: run `make site` (make test does it first)")
    dev = DevStack(tmp_path_factory.mktemp("devstack"), {
        "POW_DIFFICULTY": str(POW_DIFFICULTY),
        # Faster workflow for short test drops: re-check every 0.5 s, accept entries 1 s after the close.
        "WORKFLOW_POLL_MS": "500", "REGISTRATION_GRACE_MS": "1000",
        # Every local client is 127.0.0.1: the per-IP limits would be shared by all test shoppers.
        "RATE_LIMIT_SESSION_IP": "500", "RATE_LIMIT_CHALLENGE_IP": "500", "RATE_LIMIT_REGISTER_IP": "500"})
    client = httpx.Client(base_url=dev.base, timeout=15)
    try:
        dev.start()
        yield Stack(base=dev.base, dev_dir=dev.dev_dir, operator_key=dev.operator_key, client=client)
    finally:
        client.close()
        dev.kill()  # nothing to keep: the emulator's state dies with it


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing (make browser installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        pw.stop()


@dataclass
class Shopper:
    """One browser context (one device) with one page, watched and recorded."""

    name: str
    context: Any
    page: Any
    base: str
    shots: list[str]
    test_name: str
    offsite: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def open(self, drop_id: str) -> "Shopper":
        self.page.goto(f"{self.base}/?drop={drop_id}")
        return self

    def state(self, value: str, timeout: float = WAIT_MS):
        """Wait until <main data-state> is value (the visible panel); returns the main locator."""
        from playwright.sync_api import expect

        main = self.page.locator("main")
        try:
            expect(main).to_have_attribute("data-state", value, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{self.name}: page not in {value!r}; it went {self.states()};"
                                 f" stream: {self._stream_summary()}\n{exc}") from None
        expect(self.page.get_by_test_id(f"panel-{value}")).to_be_visible()
        return main

    def _stream_summary(self) -> list:
        out = []
        for e in self.rec()["sse"]:
            data = e.get("data") or {}
            out.append((e["n"], e["type"], data.get("phase") or data.get("status") or e.get("ready")))
        return out

    def shot(self, what: str, full_page: bool = False) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{self.test_name}-{len(self.shots) + 1:02d}-{self.name}-{what}.png"
        self.page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        self.shots.append(path.name)
        return path

    def rec(self) -> dict:
        return self.page.evaluate("() => window.__rec")

    def states(self, element: str = "drop") -> list[str]:
        """The distinct successive values one element's data-state took (main is 'drop')."""
        seen: list[str] = []
        for change in self.rec()["states"]:
            if change["id"] == element and (not seen or seen[-1] != change["state"]):
                seen.append(change["state"])
        return seen

    def me(self, drop_id: str) -> dict:
        """GET /me with this page's own session (what the page itself would read)."""
        return self.page.evaluate("""async (id) => {
            const r = await fetch(`/api/drop/${id}/me`, { headers: { Authorization: `Bearer ${localStorage.getItem("drop.session")}` } });
            return r.json();
        }""", drop_id)

    def register(self, tickets: int = 1) -> dict:
        """Choose tickets and enter the draw with the mouse; returns the register request body."""
        from playwright.sync_api import expect

        self.state("registration-open")
        self.page.get_by_test_id("tickets").select_option(str(tickets))
        with self.page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/register")) as req:
            self.page.get_by_test_id("register-button").click()
        self.state("registered")
        expect(self.page.get_by_test_id("status-message")).to_contain_text(f"You're in the draw with {tickets} ticket")
        return req.value.post_data_json


@pytest.fixture
def shoppers(browser, stack, request):
    """new_shopper(name, **context options) -> Shopper; checks every page's traffic at the end."""
    made: list[Shopper] = []
    test_name = re.sub(r"^test_", "", request.node.name)[:80]
    shots: list[str] = []
    for old in SHOTS.glob(f"{test_name}-*.png"):  # this run's pictures only
        old.unlink()

    def new_shopper(name: str = "shopper", **options: Any) -> Shopper:
        context = browser.new_context(**{"viewport": {"width": 1280, "height": 900}, **options})
        context.add_init_script(RECORDER)
        page = context.new_page()
        shopper = Shopper(name=name, context=context, page=page, base=stack.base, shots=shots, test_name=test_name)

        def on_request(req: Any) -> None:
            parts = urlsplit(req.url)
            shopper.requests.append((req.method, req.url))
            if parts.scheme in ("data", "blob", "about"):
                return
            if parts.hostname not in LOOPBACK:
                shopper.offsite.append(req.url)

        context.on("request", on_request)
        context.on("websocket", lambda ws: shopper.offsite.append(ws.url)
                   if urlsplit(ws.url).hostname not in LOOPBACK else None)
        page.on("pageerror", lambda exc: shopper.errors.append(str(exc)))
        made.append(shopper)
        return shopper

    yield new_shopper
    offsite = {s.name: s.offsite for s in made if s.offsite}
    errors = {s.name: s.errors for s in made if s.errors}
    for s in made:
        s.context.close()
    assert not offsite, f"the page requested something outside loopback: {json.dumps(offsite, indent=1)}"
    assert not errors, f"uncaught page errors: {json.dumps(errors, indent=1)}"
