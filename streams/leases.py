"""Which worker processes which camera: static shards or leases that move when a worker dies.

Leases live in the shared database (``camera_leases``: an atomic ``UPDATE … WHERE worker_id = me OR
expires_at < now`` claims or renews, an ``INSERT`` claims a camera never leased) or in Redis (``SET NX PX``
claims, a compare-and-``PEXPIRE`` script renews). A worker that stops renewing loses its cameras
``ttl_s`` later and live workers take them over.

Balance: every worker also keeps a heartbeat lease of its own, so each knows how many workers are alive
and takes at most its fair share ``ceil(cameras / workers)``; cameras are preferred by rendezvous
hashing, so the split is stable and a joining worker gets cameras released by the others.

Safety: a worker processes a camera only while its own clock says the lease it last renewed has not
expired (``LeaseManager.valid``), so a paused worker stops before another one may start.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import redis
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from urbaneye.db.models import CameraLease

log = logging.getLogger(__name__)

#: Heartbeat rows share the lease table; ':' can never appear in a camera id, so they cannot collide.
WORKER_KEY_PREFIX = "w:"


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → ``(i, n)`` with ``0 <= i < n``.

    Example:
        >>> parse_shard("1/3")
        (1, 3)
    """
    try:
        i_text, n_text = text.split("/")
        index, count = int(i_text), int(n_text)
    except ValueError:
        raise ValueError(f"--shard {text!r} is not 'i/n' (e.g. 0/2 for the first of two shards)") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(
            f"--shard {text!r}: need 0 <= i < n, e.g. 0/{max(count, 2)} … {max(count, 2) - 1}/{max(count, 2)}"
        )
    return index, count


def shard_of(camera_id: str, count: int) -> int:
    """Stable shard of a camera (sha1, not Python's salted ``hash``), the same on every machine."""
    return int.from_bytes(hashlib.sha1(camera_id.encode()).digest()[:8], "big") % count


def select_shard(camera_ids: Iterable[str], index: int, count: int) -> list[str]:
    return [c for c in camera_ids if shard_of(c, count) == index]


def preference(worker_id: str, camera_id: str) -> int:
    """Rendezvous weight: each camera prefers the live worker with the highest weight."""
    return int.from_bytes(hashlib.sha1(f"{worker_id}\0{camera_id}".encode()).digest()[:8], "big")


class LeaseBackend(Protocol):
    def heartbeat(self, worker_id: str, ttl_s: float) -> None: ...

    def live_workers(self) -> set[str]: ...

    def claim(self, camera_id: str, worker_id: str, ttl_s: float) -> bool:
        """Take the camera if free or expired, or renew it if already ours. True if we hold it now."""
        ...

    def release(self, camera_id: str, worker_id: str) -> None: ...

    def holders(self) -> dict[str, str]:
        """Unexpired camera leases: camera id → worker id."""
        ...


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class DbLeases:
    """Leases in the ``camera_leases`` table (PostgreSQL or SQLite). Worker clocks must be NTP-synced."""

    def __init__(self, session_factory) -> None:  # noqa: ANN001 - sessionmaker
        self.sessions = session_factory

    def _upsert(self, key: str, worker_id: str, ttl_s: float, *, force: bool) -> bool:
        now = _utcnow()
        expires = now + dt.timedelta(seconds=ttl_s)
        cond = CameraLease.camera_id == key
        if not force:
            cond = cond & or_(CameraLease.worker_id == worker_id, CameraLease.expires_at < now)
        with self.sessions() as session:
            result = session.execute(
                update(CameraLease).where(cond).values(worker_id=worker_id, expires_at=expires)
            )
            if result.rowcount == 1:
                session.commit()
                return True
            session.rollback()
        try:
            with self.sessions() as session:
                session.execute(
                    insert(CameraLease).values(camera_id=key, worker_id=worker_id, expires_at=expires)
                )
                session.commit()
            return True
        except IntegrityError:  # the row exists and is someone else's, unexpired
            return False

    def heartbeat(self, worker_id: str, ttl_s: float) -> None:
        self._upsert(_worker_key(worker_id), worker_id, ttl_s, force=True)

    def live_workers(self) -> set[str]:
        with self.sessions() as session:
            rows = session.execute(
                select(CameraLease.worker_id).where(
                    CameraLease.camera_id.startswith(WORKER_KEY_PREFIX), CameraLease.expires_at >= _utcnow()
                )
            ).all()
        return {r[0] for r in rows}

    def claim(self, camera_id: str, worker_id: str, ttl_s: float) -> bool:
        return self._upsert(camera_id, worker_id, ttl_s, force=False)

    def release(self, camera_id: str, worker_id: str) -> None:
        with self.sessions() as session:
            session.execute(
                delete(CameraLease).where(
                    CameraLease.camera_id == camera_id, CameraLease.worker_id == worker_id
                )
            )
            session.commit()

    def release_worker(self, worker_id: str) -> None:
        self.release(_worker_key(worker_id), worker_id)

    def holders(self) -> dict[str, str]:
        with self.sessions() as session:
            rows = session.execute(
                select(CameraLease.camera_id, CameraLease.worker_id).where(
                    CameraLease.expires_at >= _utcnow()
                )
            ).all()
        return {c: w for c, w in rows if not c.startswith(WORKER_KEY_PREFIX)}


def _worker_key(worker_id: str) -> str:
    return WORKER_KEY_PREFIX + hashlib.sha1(worker_id.encode()).hexdigest()[:40]


_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLeases:
    """Leases as Redis keys ``{prefix}cam:<id>`` = worker id with a PX expiry (server clock)."""

    def __init__(self, url: str, prefix: str = "urbaneye:lease:") -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = prefix
        self._claim = self.client.register_script(_RENEW_LUA)
        self._release = self.client.register_script(_RELEASE_LUA)

    def heartbeat(self, worker_id: str, ttl_s: float) -> None:
        self.client.set(f"{self.prefix}worker:{worker_id}", worker_id, px=int(ttl_s * 1000))

    def live_workers(self) -> set[str]:
        keys = list(self.client.scan_iter(match=f"{self.prefix}worker:*", count=500))
        return {k.decode().split("worker:", 1)[1] for k in keys}

    def claim(self, camera_id: str, worker_id: str, ttl_s: float) -> bool:
        return bool(self._claim(keys=[f"{self.prefix}cam:{camera_id}"], args=[worker_id, int(ttl_s * 1000)]))

    def release(self, camera_id: str, worker_id: str) -> None:
        self._release(keys=[f"{self.prefix}cam:{camera_id}"], args=[worker_id])

    def release_worker(self, worker_id: str) -> None:
        self.client.delete(f"{self.prefix}worker:{worker_id}")

    def holders(self) -> dict[str, str]:
        out: dict[str, str] = {}
        keys = list(self.client.scan_iter(match=f"{self.prefix}cam:*", count=500))
        for key, value in zip(keys, self.client.mget(keys) if keys else [], strict=True):
            if value is not None:
                out[key.decode().split("cam:", 1)[1]] = value.decode()
        return out


@dataclass(frozen=True)
class LeaseChange:
    gained: frozenset[str]
    lost: frozenset[str]


class LeaseManager:
    """Claims, renews and balances this worker's share of ``camera_ids``. Call ``tick`` every ``ttl_s / 3``.

    Example:
        >>> mgr = LeaseManager(DbLeases(session_factory()), "host-1:123", ["cam-1", "cam-2"], ttl_s=15)  # doctest: +SKIP
        >>> change = mgr.tick()   # start gained cameras, stop lost ones  # doctest: +SKIP
    """

    def __init__(
        self, backend: LeaseBackend, worker_id: str, camera_ids: Iterable[str], ttl_s: float
    ) -> None:
        self.backend = backend
        self.worker_id = worker_id
        self.camera_ids = sorted(set(camera_ids))
        self.ttl_s = ttl_s
        self.held: set[str] = set()
        self._valid_until: dict[str, float] = {}  # camera → monotonic deadline (renew time + ttl − margin)
        self._failing = False

    @property
    def interval_s(self) -> float:
        return self.ttl_s / 3.0

    def valid(self, camera_id: str, now_mono: float | None = None) -> bool:
        """True while our last successful renew of the camera's lease is certainly unexpired."""
        now = time.monotonic() if now_mono is None else now_mono
        return camera_id in self.held and now < self._valid_until.get(camera_id, 0.0)

    def tick(self) -> LeaseChange:
        """One round: heartbeat, renew held, shed extras, claim up to the fair share. Never raises."""
        before = set(self.held)
        try:
            self._tick()
            if self._failing:
                log.info("lease backend reachable again")
            self._failing = False
        except Exception as exc:  # DB/Redis outage: keep what is still valid, retry next tick
            if not self._failing:
                log.error("lease round failed (%s); cameras stop when their leases run out", exc)
            self._failing = True
            now = time.monotonic()
            self.held = {c for c in self.held if now < self._valid_until.get(c, 0.0)}
        return LeaseChange(frozenset(self.held - before), frozenset(before - self.held))

    def _tick(self) -> None:
        margin_s = min(1.0, self.ttl_s * 0.1)
        started = time.monotonic()
        self.backend.heartbeat(self.worker_id, self.ttl_s)
        workers = self.backend.live_workers() | {self.worker_id}
        share = math.ceil(len(self.camera_ids) / len(workers)) if self.camera_ids else 0
        # Order by how much this camera prefers us among live workers (rank 0 = we are its first choice).
        ranked = sorted(self.camera_ids, key=lambda c: (self._rank(c, workers), c))
        renewed: set[str] = set()
        for cam in [c for c in ranked if c in self.held]:
            if self.backend.claim(cam, self.worker_id, self.ttl_s):
                renewed.add(cam)
                self._valid_until[cam] = started + self.ttl_s - margin_s
        # Shed the cameras we like least when over our share (a worker joined): they go to their new owner.
        keep = [c for c in ranked if c in renewed]
        for cam in keep[share:]:
            self.backend.release(cam, self.worker_id)
            renewed.discard(cam)
        if len(renewed) < share:
            for cam in ranked:
                if len(renewed) >= share:
                    break
                if cam in renewed:
                    continue
                if self.backend.claim(cam, self.worker_id, self.ttl_s):
                    renewed.add(cam)
                    self._valid_until[cam] = started + self.ttl_s - margin_s
        self.held = renewed

    def set_camera_ids(self, camera_ids: Iterable[str]) -> set[str]:
        """Change the cameras to share out (one added, disabled or deleted in the database).

        Leases held on cameras no longer in the set are released now; returns those cameras (stop them).
        New cameras are claimed from the next ``tick``.
        """
        self.camera_ids = sorted(set(camera_ids))
        dropped = self.held - set(self.camera_ids)
        for cam in sorted(dropped):
            try:
                self.backend.release(cam, self.worker_id)
            except Exception as exc:  # it expires on its own; nobody will claim a camera not in their set
                log.warning("lease of %s not released (%s); it expires in %.0f s", cam, exc, self.ttl_s)
            self._valid_until.pop(cam, None)
        self.held -= dropped
        return dropped

    def _rank(self, camera_id: str, workers: set[str]) -> int:
        mine = preference(self.worker_id, camera_id)
        return sum(1 for w in workers if w != self.worker_id and preference(w, camera_id) > mine)

    def release_all(self) -> None:
        """Give every camera back now (graceful shutdown): others take over without waiting for expiry."""
        for cam in sorted(self.held):
            try:
                self.backend.release(cam, self.worker_id)
            except Exception as exc:
                log.warning("lease of %s not released (%s); it expires in %.0f s", cam, exc, self.ttl_s)
        self.held.clear()
        release_worker = getattr(self.backend, "release_worker", None)
        if release_worker is not None:
            try:
                release_worker(self.worker_id)
            except Exception as exc:  # it expires on its own within ttl_s
                log.debug("heartbeat of %s not released: %s", self.worker_id, exc)
