"""The SSE server streams a drop's status and a shopper's own standing, read over real HTTP."""
from __future__ import annotations

import json
import os
import queue
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import httpx
import pytest

from chalicelib.config import Settings
from chalicelib.service import DropService
from chalicelib.store import DropStore
from chalicelib.tables import create_tables
from chalicelib.tokens import Signer
from devstack.dev import free_port as _free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
TABLE = "drops-sse-e2e"
SIGNING_KEY = secrets.token_hex(32)
OPERATOR_KEY = secrets.token_hex(16)
ORIGIN = "http://shop.localhost:5173"
ROSTER_MIN_STREAMS = 5  # from this many streams on a drop, one shared read of its participants


def _aws_env(endpoint: str) -> dict:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "DROPS_TABLE": TABLE, "SIGNING_KEY": SIGNING_KEY,
            "OPERATOR_KEY": OPERATOR_KEY}


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "devstack.moto_server", "--port", str(port)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        assert "ready" in proc.stdout.readline(), f"moto server did not start:\n{log.read_text()[-3000:]}"
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        create_tables(client, {"DropsTable": TABLE})
        yield endpoint, client
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _start_sse(moto_endpoint: str, log: Path, **extra: str):
    port = _free_port()
    env = {**os.environ, **_aws_env(moto_endpoint), "SSE_HEARTBEAT_S": "1", "ALLOWED_ORIGIN": ORIGIN,
           "SSE_ME_REFRESH_S": "1", "SSE_ROSTER_MIN_STREAMS": str(ROSTER_MIN_STREAMS), **extra}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sse", "--port", str(port), "--log-level", "warning"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{base}/events/_stats", timeout=1)
            return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"SSE server did not start:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def sse(moto, tmp_path_factory):
    proc, base = _start_sse(moto[0], tmp_path_factory.mktemp("sse") / "sse.log")
    yield base
    _stop(proc)


@pytest.fixture(scope="module")
def short_sse(moto, tmp_path_factory):
    proc, base = _start_sse(moto[0], tmp_path_factory.mktemp("sse") / "short.log", SSE_MAX_DURATION_S="2")
    yield base
    _stop(proc)


@pytest.fixture(scope="module")
def service(moto):
    cfg = Settings(table_name=TABLE, signing_key=SIGNING_KEY, operator_key=OPERATOR_KEY, registration_grace_ms=0)
    return DropService(store=DropStore(moto[1], TABLE), signer=Signer(SIGNING_KEY), settings=cfg)


@pytest.fixture
def drop(service):
    """A drop open for registration with two shoppers: a (2 tickets) and b (5 tickets)."""
    drop_id = "sse-" + secrets.token_hex(4)
    now = service.clock()
    service.create_drop({"drop_id": drop_id, "name": "Live", "inventory": 5, "registration_start": now - 1000,
                         "registration_end": now + 600_000, "purchase_window": 60,
                         "product": {"title": "Jacket", "image_url": "/img/j.svg", "price": 800}})
    service.register(drop_id, "shp_a", tickets=2, rollover=0)
    service.register(drop_id, "shp_b", tickets=5, rollover=0)
    return drop_id


def _token(service, drop_id: str, shopper_id: str) -> str:
    return service.stream_token(drop_id, shopper_id)["token"]


class Stream:
    """An SSE stream read by a thread; events go to a queue as dicts {event, id, data, at}."""

    def __init__(self, url: str, headers: dict | None = None) -> None:
        self.events: queue.Queue = queue.Queue()
        self.status, self.headers, self.raw, self.seen = 0, {}, [], []
        self._stop, self._ready, self.closed_at = threading.Event(), threading.Event(), None
        self._thread = threading.Thread(target=self._read, args=(url, headers or {}), daemon=True)
        self._thread.start()
        assert self._ready.wait(5), "no response headers"

    def _read(self, url: str, headers: dict) -> None:
        with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=10)) as resp:
            self.status, self.headers = resp.status_code, resp.headers
            self._ready.set()
            event: dict = {}
            for line in resp.iter_lines():
                self.raw.append(line)
                if self._stop.is_set():
                    return
                if not line:
                    if "data" in event:
                        event["data"] = json.loads(event["data"])
                        event["at"] = time.monotonic()
                        self.seen.append(event)
                        self.events.put(event)
                    event = {}
                elif not line.startswith(":"):
                    field, _, value = line.partition(":")
                    event[field] = value[1:] if value.startswith(" ") else value
        self.closed_at = time.monotonic()
        self.events.put(None)

    def next(self, name: str, timeout: float = 3.0, where=lambda e: True) -> dict:
        """The next event called name that matches where (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {name!r} event within {timeout}s"
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                raise AssertionError(f"no {name!r} event within {timeout}s") from None
            assert event is not None, f"stream closed before a {name!r} event"
            if event.get("event") == name and where(event):
                return event

    def drain(self, seconds: float) -> list[dict]:
        out, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if event is None:
                break
            out.append(event)
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _url(base: str, drop_id: str, token: str) -> str:
    return f"{base}/events/{drop_id}?token={token}"


def test_first_events_are_the_drop_and_the_shoppers_own_standing(sse, service, drop):
    with Stream(_url(sse, drop, _token(service, drop, "shp_a"))) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        first = stream.next("drop")
        me = stream.next("me")
        assert "retry: 2000" in stream.raw
        assert first["data"]["drop_id"] == drop and first["data"]["phase"] == "REGISTRATION"
        assert first["data"]["registered"] == 0 and first["data"]["inventory"] == 5
        assert me["data"]["status"] == "REGISTERED" and me["data"]["shopper_id"] == "shp_a"
        assert me["data"]["tickets"] == 2
        assert first["id"].split(".")[0] == me["id"].split(".")[0] and me["id"] != first["id"]
        beat = stream.next("heartbeat", timeout=2.5)
        assert set(beat["data"]) == {"server_time"} and beat["id"] == me["id"]


def test_a_phase_change_reaches_the_stream_within_a_second(sse, service, drop):
    with Stream(_url(sse, drop, _token(service, drop, "shp_b"))) as stream:
        stream.next("me")
        changed_at = time.monotonic()
        service.lottery_now(drop)
        lottery = stream.next("drop", where=lambda e: e["data"]["phase"] == "LOTTERY")
        assert lottery["at"] - changed_at < 1.0
        changed_at = time.monotonic()
        service.run_lottery(drop)
        purchase = stream.next("drop", where=lambda e: e["data"]["phase"] == "PURCHASE")
        assert purchase["at"] - changed_at < 1.0 and purchase["data"]["round"] == 1
        me = stream.next("me", where=lambda e: e["data"]["status"] != "REGISTERED")
        assert me["at"] - changed_at < 1.0
        assert me["data"]["status"] == "WINNER" and me["data"]["purchase_deadline"] == purchase["data"]["purchase_deadline"]


def test_resume_with_last_event_id_sends_only_what_changed(sse, service, drop):
    token = _token(service, drop, "shp_a")
    with Stream(_url(sse, drop, token)) as stream:
        stream.next("drop")
        last = stream.next("me")["id"]
    with Stream(_url(sse, drop, token), {"Last-Event-ID": last}) as stream:
        seen = stream.drain(1.5)
        assert [e["event"] for e in seen if e["event"] != "heartbeat"] == []
        assert all(e["id"] == last for e in seen)
        service.lottery_now(drop)
        changed = stream.next("drop")
        assert changed["data"]["phase"] == "LOTTERY" and changed["id"] != last
        assert changed["id"].split(".")[1] == last.split(".")[1]  # me did not change, and was not re-sent
        assert [e["event"] for e in stream.drain(1.2) if e["event"] == "me"] == []
    stale_drop = "000000000000." + last.split(".")[1]
    with Stream(_url(sse, drop, token), {"Last-Event-ID": stale_drop}) as stream:
        assert stream.next("drop")["data"]["phase"] == "LOTTERY"
        assert [e["event"] for e in stream.drain(1.2) if e["event"] == "me"] == []


def _expect_401(base: str, drop_id: str, token: str | None) -> dict:
    url = f"{base}/events/{drop_id}" + (f"?token={token}" if token is not None else "")
    with httpx.stream("GET", url, timeout=5) as resp:  # a wrongly accepted token must fail, not hang
        assert resp.status_code == 401 and resp.headers["content-type"] == "application/json"
        return json.loads(resp.read())


def test_forged_expired_other_drop_and_wrong_purpose_tokens_get_401_before_streaming(sse, service, drop):
    forged = Signer(secrets.token_hex(32)).issue("stream", {"sub": "shp_a", "drop": drop}, ttl_s=60)
    expired = service.signer.issue("stream", {"sub": "shp_a", "drop": drop}, exp_ms=int(time.time() * 1000) - 5000)
    other_drop = service.signer.issue("stream", {"sub": "shp_a", "drop": "some-other-drop"}, ttl_s=60)
    shopper_token = service.signer.issue("shopper", {"sub": "shp_a"}, ttl_s=60)
    for token in (forged, expired, other_drop, shopper_token, "not-a-jwt", "", None):
        body = _expect_401(sse, drop, token)
        assert body["error"] == "invalid_token" and body["message"]


def test_a_token_for_another_shopper_never_shows_this_shoppers_standing(sse, service, drop):
    with Stream(_url(sse, drop, _token(service, drop, "shp_b"))) as stream:
        stream.next("me")
        service.lottery_now(drop)
        service.run_lottery(drop)
        stream.next("me", where=lambda e: e["data"]["status"] == "WINNER")
        stream.drain(0.3)
    mine = [e for e in stream.seen if e["event"] == "me"]
    assert len(mine) == 2 and all(e["data"]["shopper_id"] == "shp_b" and e["data"]["tickets"] == 5 for e in mine)
    assert not any("shp_a" in line for line in stream.raw)


def test_the_stream_closes_at_its_maximum_duration(short_sse, service, drop):
    opened = time.monotonic()
    stream = Stream(_url(short_sse, drop, _token(service, drop, "shp_a")))
    stream.next("me")
    stream._thread.join(timeout=6)
    assert stream.closed_at is not None, "the stream did not end"
    assert 1.8 <= stream.closed_at - opened < 4.0


def _stats(base: str) -> dict:
    resp = httpx.get(f"{base}/events/_stats", headers={"x-operator-key": OPERATOR_KEY}, timeout=5)
    assert resp.status_code == 200
    return resp.json()


def test_streams_of_one_drop_share_one_poller(sse, service, drop):
    before = _stats(sse)
    streams = [Stream(_url(sse, drop, _token(service, drop, s))) for s in ("shp_a", "shp_b") * 4]
    try:
        for stream in streams:
            stream.next("me")
        during = _stats(sse)
        assert during["pollers"] == before["pollers"] + 1 and during["streams"] == before["streams"] + 8
        time.sleep(2)
        after = _stats(sse)
        rate = (after["drop_reads"] - during["drop_reads"]) / (after["time"] - during["time"])
        assert rate <= 3.0 * after["pollers"], f"{rate:.1f} drop reads/s for {after['pollers']} poller(s)"
    finally:
        for stream in streams:
            stream.close()
    deadline = time.monotonic() + 5
    while _stats(sse)["streams"] != before["streams"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _stats(sse)["pollers"] == before["pollers"]


def test_many_streams_read_the_participants_once_per_change_not_once_per_stream(sse, service, drop):
    shoppers = ("shp_a", "shp_b") * 3 + ("shp_c",)
    streams = [Stream(_url(sse, drop, _token(service, drop, s))) for s in shoppers]
    try:
        for shopper, stream in zip(shoppers, streams):
            assert stream.next("me")["data"]["status"] == ("NOT_REGISTERED" if shopper == "shp_c" else "REGISTERED")
        service.register(drop, "shp_c", tickets=3, rollover=0)  # not in a roster read before: still shows at once
        assert streams[-1].next("me", timeout=3)["data"]["status"] == "REGISTERED"
        time.sleep(1.5)
        before = _stats(sse)
        service.lottery_now(drop)
        service.run_lottery(drop)
        for shopper, stream in zip(shoppers, streams):
            me = stream.next("me", where=lambda e: e["data"]["status"] != "REGISTERED")["data"]
            assert me["status"] == "WINNER" and me["shopper_id"] == shopper
            assert me["tickets"] == {"shp_a": 2, "shp_b": 5, "shp_c": 3}[shopper]
        after = _stats(sse)
    finally:
        for stream in streams:
            stream.close()
    assert after["roster_reads"] > before["roster_reads"]
    assert after["participant_reads"] - before["participant_reads"] < len(streams), "a GetItem per stream"


def test_unknown_drop_is_404_and_stats_need_the_operator_key(sse, service):
    token = service.signer.issue("stream", {"sub": "shp_a", "drop": "no-such-drop"}, ttl_s=60)
    resp = httpx.get(_url(sse, "no-such-drop", token), timeout=5)
    assert resp.status_code == 404 and resp.json()["error"] == "drop_not_found"
    resp = httpx.get(f"{sse}/events/_stats", headers={"x-operator-key": "wrong"}, timeout=5)
    assert resp.status_code == 403 and resp.json()["error"] == "forbidden"


def test_cors_allows_only_the_configured_origin(sse, service, drop):
    url = _url(sse, drop, "bad")
    allowed = httpx.get(url, headers={"Origin": ORIGIN}, timeout=5)
    assert allowed.headers.get("access-control-allow-origin") == ORIGIN
    other = httpx.get(url, headers={"Origin": "https://evil.example"}, timeout=5)
    assert "access-control-allow-origin" not in other.headers
