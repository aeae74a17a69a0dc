"""One poller per drop, shared by every stream of that drop in this process."""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import anyio
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.domain.drop import Drop, Participant
from chalicelib.domain.errors import TransientStoreError
from chalicelib.service import drop_view

log = logging.getLogger("drops.sse")
STORE_ERRORS = (ClientError, BotoCoreError, TransientStoreError)


def now_ms() -> int:
    return int(time.time() * 1000)


def version(view: dict) -> str:
    """A short, stable hash of a view's content; server_time does not count."""
    body = json.dumps({k: v for k, v in view.items() if k != "server_time"}, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(body.encode(), digest_size=6).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """The drop as last read, its public view and that view's version."""

    drop: Drop
    view: dict
    version: str
    epoch: tuple  # changes when a shopper's own record may have changed with the drop (phase, round)


class Stats:
    """Counters for GET /events/_stats and the benchmark."""

    def __init__(self) -> None:
        self.drop_reads = 0
        self.participant_reads = 0
        self.roster_reads = 0
        self.roster_items = 0
        self.roster_last_ms = 0.0
        self.read_errors = 0
        self.streams = 0
        self.streams_total = 0
        self.pollers_started = 0

    def as_dict(self, pollers: int) -> dict:
        return {"drop_reads": self.drop_reads, "participant_reads": self.participant_reads,
                "roster_reads": self.roster_reads, "roster_items": self.roster_items,
                "roster_last_ms": round(self.roster_last_ms, 1),
                "read_errors": self.read_errors, "streams": self.streams, "streams_total": self.streams_total,
                "pollers": pollers, "pollers_started": self.pollers_started}


class DropHub:
    """Polls one drop every poll_ms while anyone watches; wakes the streams when its view changes."""

    def __init__(self, drop_id: str, hubs: "Hubs") -> None:
        self.drop_id = drop_id
        self.subscribers = 0
        self.snapshot: Snapshot | None = None
        self.missing = False  # the drop does not exist (or no longer)
        self.changed = asyncio.Event()
        self._hubs = hubs
        self._first = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._roster: tuple[tuple, float, asyncio.Task] | None = None  # (epoch, loaded at, load task)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"sse-poller-{self.drop_id}")
        self._hubs.stats.pollers_started += 1

    def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self._notify()  # streams still waiting see that the hub is gone

    async def ready(self) -> Snapshot | None:
        """The first snapshot (None when the drop does not exist or cannot be read)."""
        await self._first.wait()
        return self.snapshot

    async def participant(self, shopper_id: str, epoch: tuple, *, first: bool = False) -> Participant | None:
        """The shopper's record: from the drop's shared roster when many watch, else one GetItem.

        A stream's first read, and a shopper not in the roster (not registered, or registered
        since it was read), always get their own GetItem, so a new entry shows at once.
        """
        if first or not self._roster_pays():
            return await self._hubs.participant(self.drop_id, shopper_id)
        mono = time.monotonic()
        if self._roster is None or self._roster[0] != epoch or mono - self._roster[1] >= self._hubs.me_refresh_s:
            task = asyncio.create_task(self._load_roster())
            self._roster = (epoch, mono, task)
        found = (await asyncio.shield(self._roster[2])).get(shopper_id)
        return found if found is not None else await self._hubs.participant(self.drop_id, shopper_id)

    def _roster_pays(self) -> bool:
        """One read of all participants beats a GetItem per viewer when viewers are many against entries."""
        hubs, snap = self._hubs, self.snapshot
        registered = snap.drop.registered if snap else 0
        return (self.subscribers >= hubs.roster_min_streams and registered <= hubs.roster_max
                and self.subscribers * 8 >= registered)

    async def _load_roster(self) -> dict[str, Participant]:
        stats = self._hubs.stats
        stats.roster_reads += 1
        started = time.monotonic()
        try:
            roster = await self._hubs.read(lambda: {p.shopper_id: p for p in self._hubs.store.participants(self.drop_id)})
        except BaseException:
            self._roster = None  # the next caller tries again
            raise
        stats.roster_items += len(roster)
        stats.roster_last_ms = (time.monotonic() - started) * 1000
        return roster

    def _notify(self) -> None:
        old, self.changed = self.changed, asyncio.Event()
        old.set()

    async def _run(self) -> None:
        interval = self._hubs.poll_ms / 1000
        while True:
            started = time.monotonic()
            await self._poll()
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def _poll(self) -> None:
        try:
            drop = await self._hubs.read(self._hubs.store.get_drop, self.drop_id, poll=True)
        except STORE_ERRORS as exc:
            self._hubs.stats.read_errors += 1
            log.warning("drop read failed", extra={"drop_id": self.drop_id, "error": type(exc).__name__})
            self._first.set()
            return
        finally:
            self._hubs.stats.drop_reads += 1
        if drop is None:
            self.missing, self.snapshot = True, None
            self._first.set()
            self._notify()
            return
        view = drop_view(drop, now_ms())
        ver = version(view)
        if self.snapshot is None or ver != self.snapshot.version or drop != self.snapshot.drop:
            self.snapshot = Snapshot(drop, view, ver, (drop.phase, len(drop.rounds)))
            self._notify()
        self._first.set()


class Hubs:
    """The hubs of this process: a hub lives from its drop's first subscriber to its last."""

    def __init__(self, store_factory: Callable[[], Any], *, poll_ms: int, read_concurrency: int,
                 me_refresh_s: float = 10, roster_min_streams: int = 50, roster_max: int = 20_000) -> None:
        self._store_factory = store_factory
        self._hubs: dict[str, DropHub] = {}
        self.poll_ms = poll_ms
        self.me_refresh_s = me_refresh_s
        self.roster_min_streams = roster_min_streams
        self.roster_max = roster_max
        self.stats = Stats()
        self._limiter = anyio.CapacityLimiter(read_concurrency)
        self._poll_limiter = anyio.CapacityLimiter(4)  # drop polls never queue behind participant reads

    @property
    def store(self) -> Any:
        return self._store_factory()

    async def read(self, fn: Callable, *args: Any, poll: bool = False) -> Any:
        """A blocking store call in a worker thread, at most read_concurrency at once."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._poll_limiter if poll else self._limiter)

    async def participant(self, drop_id: str, shopper_id: str) -> Participant | None:
        self.stats.participant_reads += 1
        return await self.read(self.store.get_participant, drop_id, shopper_id)

    def acquire(self, drop_id: str) -> DropHub:
        hub = self._hubs.get(drop_id)
        if hub is None:
            hub = self._hubs[drop_id] = DropHub(drop_id, self)
            hub.start()
        hub.subscribers += 1
        self.stats.streams += 1
        self.stats.streams_total += 1
        return hub

    def release(self, hub: DropHub) -> None:
        hub.subscribers -= 1
        self.stats.streams -= 1
        if hub.subscribers <= 0 and self._hubs.get(hub.drop_id) is hub:
            del self._hubs[hub.drop_id]
            hub.stop()

    def __len__(self) -> int:
        return len(self._hubs)

    def stop_all(self) -> None:
        for hub in list(self._hubs.values()):
            hub.stop()
        self._hubs.clear()
