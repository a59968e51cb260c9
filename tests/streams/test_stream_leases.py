"""Camera leases in PostgreSQL, SQLite and Redis: atomic claims, fair split, takeover after expiry."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.leases import DbLeases, LeaseManager, RedisLeases, parse_shard, select_shard, shard_of

CAMERAS = [f"cam-{i}" for i in range(7)]


@pytest.fixture(params=["postgres", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    if request.param == "redis":
        yield RedisLeases(request.getfixturevalue("redis_url"), prefix=f"t{time.time_ns()}:")
        return
    from urbaneye.db.migrate import upgrade
    from urbaneye.db.session import session_factory

    url = (
        request.getfixturevalue("pg_url") if request.param == "postgres" else f"sqlite:///{tmp_path / 'l.db'}"
    )
    upgrade(url)
    yield DbLeases(session_factory(url))


def test_claims_are_atomic(backend: object) -> None:
    winners = []
    barrier = threading.Barrier(8)

    def claim(i: int) -> None:
        barrier.wait()
        if backend.claim("cam-x", f"w{i}", 30):
            winners.append(f"w{i}")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert backend.holders() == {"cam-x": winners[0]}
    assert backend.claim("cam-x", winners[0], 30)  # renewing our own lease
    assert not backend.claim("cam-x", "someone-else", 30)
    backend.release("cam-x", "someone-else")  # not theirs: no effect
    assert backend.holders() == {"cam-x": winners[0]}
    backend.release("cam-x", winners[0])
    assert backend.holders() == {}


def test_workers_split_fairly_without_overlap_and_take_over_a_dead_one(backend: object) -> None:
    ttl_s = 2.0
    a = LeaseManager(backend, "worker-a", CAMERAS, ttl_s)
    b = LeaseManager(backend, "worker-b", CAMERAS, ttl_s)
    a.tick()  # alone: takes everything
    assert a.held == set(CAMERAS)
    b.tick()  # joins: sees two workers, claims what is free (nothing yet)
    a.tick()  # sheds down to its share ceil(7/2) = 4
    b.tick()  # claims the released ones
    assert len(a.held) == 4 and len(b.held) == 3
    assert a.held.isdisjoint(b.held) and a.held | b.held == set(CAMERAS)
    assert backend.holders() == {**dict.fromkeys(a.held, "worker-a"), **dict.fromkeys(b.held, "worker-b")}
    assert all(a.valid(c) for c in a.held) and not any(a.valid(c) for c in b.held)

    for _ in range(3):  # steady state: nothing moves
        assert not a.tick().gained and not b.tick().gained

    # worker-a dies (stops renewing). Until its leases expire, b must not take them.
    lost = set(a.held)
    b.tick()
    assert b.held.isdisjoint(lost)
    time.sleep(ttl_s + 0.2)
    change = b.tick()
    assert change.gained == frozenset(lost) and b.held == set(CAMERAS)
    assert not any(a.valid(c, time.monotonic()) for c in lost)  # a's own view: expired, so it stopped too


def test_graceful_release_hands_cameras_over_at_once(backend: object) -> None:
    a = LeaseManager(backend, "worker-a", CAMERAS, 60)
    b = LeaseManager(backend, "worker-b", CAMERAS, 60)
    a.tick()
    b.tick()
    assert b.held == set()
    a.release_all()
    b.tick()
    assert b.held == set(CAMERAS)  # no 60 s wait: a said goodbye


def test_cameras_disabled_or_added_in_the_database_leave_or_join_the_pool(backend: object) -> None:
    a = LeaseManager(backend, "worker-a", CAMERAS[:3], 60)
    a.tick()
    assert a.held == set(CAMERAS[:3])
    dropped = a.set_camera_ids(["cam-0", "cam-2", "cam-9"])  # cam-1 disabled, cam-9 created
    assert dropped == {"cam-1"} and a.held == {"cam-0", "cam-2"} and not a.valid("cam-1")
    assert "cam-1" not in backend.holders()  # released now, not at expiry
    assert a.tick().gained == frozenset({"cam-9"})
    assert backend.holders() == dict.fromkeys(["cam-0", "cam-2", "cam-9"], "worker-a")


def test_shards_partition_cameras_and_sub_shards_nest() -> None:
    ids = [f"cam-{i:03d}" for i in range(300)]
    shards = [set(select_shard(ids, i, 3)) for i in range(3)]
    assert set().union(*shards) == set(ids) and sum(map(len, shards)) == len(ids)
    assert all(60 <= len(s) <= 140 for s in shards)
    # machine shard i of n, process j of P runs sub-shard i + j*n of n*P: inside the machine's shard
    for c in ids:
        assert shard_of(c, 6) % 3 == shard_of(c, 3)
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "a/b", "1", "-1/2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
