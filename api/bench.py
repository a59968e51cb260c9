"""``urbaneye bench-api``: API latency under load.

PostgreSQL with N cases (bulk COPY), the app under uvicorn in its own process, and 50 concurrent reviewers
in a second process on loopback, each looping: list a page of the pending queue, then decide one case of it.
Reports p50/p95/p99 per request kind against the targets (list p95 ≤ 100 ms, verify p95 ≤ 150 ms).

    urbaneye bench-api --json
    python -m api.bench load --base-url http://127.0.0.1:8123 --tokens FILE --duration-s 20   # the load side
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from api.auth import hash_password, issue_token
from urbaneye.db.migrate import upgrade
from urbaneye.db.models import User
from urbaneye.db.session import session_scope
from urbaneye.settings import Settings

TARGET_P95_MS = {"list": 100.0, "verify": 150.0}
PG_ADMIN_URL = os.environ.get("URBANEYE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
KINDS = ("street_vending", "exposed_garbage", "bike_misparking", "open_air_barbecue")
GBT = {
    "street_vending": ("0501", "无照经营游商"),
    "exposed_garbage": ("0102", "暴露垃圾"),
    "bike_misparking": ("0506", "非机动车乱停放"),
    "open_air_barbecue": ("0510", "露天烧烤"),
}


def _scratch_db() -> tuple[str, str]:
    name = f"ue_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", name


def _drop_db(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


#: columns of the cases table the benchmark fills, in COPY order
CASE_COLUMNS = [
    "id",
    "violation_id",
    "camera_id",
    "zone_id",
    "place_key",
    "kind",
    "gbt_code",
    "gbt_name",
    "source_channel",
    "address",
    "grid_code",
    "started_at",
    "duration_s",
    "confidence",
    "model_version",
    "escalation",
    "bbox_xyxy",
    "frame_wh",
    "object_count",
    "description",
    "status",
    "review_note",
    "corrections",
    "route",
    "hotline_ref",
    "created_at",
    "updated_at",
]


def _case_row(
    i: int, kind: str, cam: str, created: dt.datetime, status: str, esc: str, confidence: str
) -> list[str]:
    """One case of the benchmark as a COPY row (``CASE_COLUMNS``)."""
    return [
        uuid.uuid4().hex,
        f"bench-{i}",
        cam,
        "z1",
        f"{cam}/z1",
        kind,
        *GBT[kind],
        "视频抓拍",
        "人民路与滨河路口东北角",
        "",
        (created - dt.timedelta(minutes=5)).isoformat(),
        "300",
        confidence,
        "bench-model",
        esc,
        "[100, 100, 200, 200]",
        "[1920, 1080]",
        "1",
        "占道经营",
        status,
        "",
        "[]",
        "hotline",
        "",
        created.isoformat(),
        created.isoformat(),
    ]


def _copy_cases(url: str, rows_tsv: str) -> None:
    """COPY the rows into ``cases``, then VACUUM ANALYZE it as autovacuum would have."""
    engine = create_engine(url)
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur, cur.copy(f"COPY cases ({', '.join(CASE_COLUMNS)}) FROM STDIN") as copy:
            copy.write(rows_tsv)
        raw.commit()
        # steady state of a live table: autovacuum has set the visibility map, so counts are index-only
        raw.driver_connection.autocommit = True
        with raw.cursor() as cur:
            cur.execute("VACUUM ANALYZE cases")
    finally:
        raw.close()
        engine.dispose()


def seed_cases(url: str, n: int, pending_fraction: float = 0.2, cameras: int = 200, seed: int = 0) -> int:
    """COPY ``n`` cases into an empty database (pending_fraction of them awaiting review). Returns pending."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    decided = ["closed", "closed", "accepted", "rejected", "queued", "dispatched"]
    buf = io.StringIO()
    pending = 0
    for i in range(n):
        kind = KINDS[i % 4]
        cam = f"cam-{rng.randrange(cameras):03d}"
        created = now - dt.timedelta(seconds=(n - i) * 30)
        is_pending = rng.random() < pending_fraction
        pending += is_pending
        status = "pending_review" if is_pending else rng.choice(decided)
        esc = rng.choices(("blue", "yellow", "red"), (0.8, 0.15, 0.05))[0]
        row = _case_row(i, kind, cam, created, status, esc, f"{rng.random():.3f}")
        buf.write("\t".join(row) + "\n")
    _copy_cases(url, buf.getvalue())
    return pending


def _make_reviewers(url: str, n: int, secret: str) -> list[str]:
    settings = Settings(environment="test", database_url=url, secret_key=secret)
    shared_hash = hash_password("bench-reviewer")  # one hash: the bench measures reviewing, not logins
    tokens = []
    with session_scope(url) as session:
        users = [
            User(username=f"bench-{i:02d}", password_hash=shared_hash, role="reviewer") for i in range(n)
        ]
        session.add_all(users)
        session.flush()
        tokens = [issue_token(u, settings).token for u in users]
    return tokens


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(base_url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(base_url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"API at {base_url} did not become healthy within {timeout_s:.0f}s")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


def _serve(port: int, env: dict[str, str], workers: int) -> subprocess.Popen:
    """The app under uvicorn in its own process."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "api.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--workers",
            str(workers),
        ],
        env=env,
    )


def _run_load(base: str, tokens: list[str], duration_s: float, think_s: float) -> dict:
    """The reviewers' load from a process of its own (``api.bench load``); its samples."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(tokens, f)
        tokens_file = f.name
    load = subprocess.run(
        [
            sys.executable,
            "-m",
            "api.bench",
            "load",
            "--base-url",
            base,
            "--tokens",
            tokens_file,
            "--duration-s",
            str(duration_s),
            "--think-s",
            str(think_s),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    Path(tokens_file).unlink(missing_ok=True)
    return json.loads(load.stdout)


def _latency_report(samples: dict) -> dict:
    """p50/p95/p99 per request kind against ``TARGET_P95_MS``."""
    latency = {}
    for name, target in TARGET_P95_MS.items():
        values = samples["latency_ms"][name]
        p95 = _pct(values, 95)
        latency[name] = {
            "n": len(values),
            "p50": round(_pct(values, 50), 1),
            "p95": round(p95, 1),
            "p99": round(_pct(values, 99), 1),
            "mean": round(statistics.fmean(values), 1) if values else None,
            "target_p95": target,
            "ok": bool(values) and p95 <= target,
        }
    return latency


def run_bench(
    database_url: str = "",
    cases: int = 100_000,
    reviewers: int = 50,
    duration_s: float = 20.0,
    think_s: float = 1.0,
    workers: int = 1,
) -> dict:
    """Seed, serve, load, report. ``think_s``: mean pause of a reviewer before each list+decide cycle
    (0 = closed loop, which measures saturation of this machine rather than reviewer latency)."""
    scratch = None
    if not database_url:
        database_url, scratch = _scratch_db()
    secret = uuid.uuid4().hex * 2
    server = None
    try:
        upgrade(database_url)
        t0 = time.perf_counter()
        pending = seed_cases(database_url, cases)
        seed_s = time.perf_counter() - t0
        tokens = _make_reviewers(database_url, reviewers, secret)
        port = _free_port()
        env = {
            **os.environ,
            "URBANEYE_DATABASE_URL": database_url,
            "URBANEYE_SECRET_KEY": secret,
            "URBANEYE_ENVIRONMENT": "test",
            "URBANEYE_DATA_DIR": tempfile.mkdtemp(prefix="ue-bench-"),
        }
        server = _serve(port, env, workers)
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base)
        samples = _run_load(base, tokens, duration_s, think_s)
    finally:
        if server is not None:
            server.terminate()
            server.wait(20)
        if scratch:
            _drop_db(scratch)
    latency = _latency_report(samples)
    ok = all(v["ok"] for v in latency.values())
    return {
        "cases": cases,
        "pending_at_start": pending,
        "reviewers": reviewers,
        "duration_s": duration_s,
        "think_s": think_s,
        "server_workers": workers,
        "seed_s": round(seed_s, 1),
        "latency_ms": latency,
        "statuses": samples["statuses"],
        "requests_per_s": round(samples["requests"] / samples["elapsed_s"], 1),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "ok": ok and not samples["errors"],
        "errors": samples["errors"][:5],
    }


async def _reviewer(client, token: str, idx: int, stop_at: float, think_s: float, out: dict) -> None:  # noqa: ANN001
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(idx)
    await asyncio.sleep(rng.uniform(0, think_s))  # reviewers don't all start in the same millisecond
    while time.monotonic() < stop_at:
        if think_s:
            # looking at the evidence before deciding; jittered so requests don't arrive in lockstep
            await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)
        # reviewers work different parts of the queue, as the UI's oldest/escalation orders spread them
        params = {
            "status": "pending_review",
            "order": rng.choice(("oldest", "escalation")),
            "limit": 50,
            "offset": idx * 50,
        }
        t = time.perf_counter()
        try:
            r = await client.get("/api/v1/cases", params=params, headers=headers)
        except Exception as exc:  # report transport failures, don't abort the run
            out["errors"].append(f"list: {exc!r}")
            continue
        out["latency_ms"]["list"].append((time.perf_counter() - t) * 1000)
        out["statuses"][f"list {r.status_code}"] = out["statuses"].get(f"list {r.status_code}", 0) + 1
        out["requests"] += 1
        data = r.json().get("data", []) if r.status_code == 200 else []
        if not data:
            continue
        case = rng.choice(data)
        body = (
            {"decision": "confirm", "duration_ms": 1500}
            if rng.random() < 0.7
            else {"decision": "reject", "reason": "false_detection", "duration_ms": 2500}
        )
        t = time.perf_counter()
        try:
            r = await client.post(f"/api/v1/cases/{case['id']}/verify", json=body, headers=headers)
        except Exception as exc:
            out["errors"].append(f"verify: {exc!r}")
            continue
        out["latency_ms"]["verify"].append((time.perf_counter() - t) * 1000)
        out["statuses"][f"verify {r.status_code}"] = out["statuses"].get(f"verify {r.status_code}", 0) + 1
        out["requests"] += 1
        if r.status_code >= 500:
            out["errors"].append(f"verify {r.status_code}: {r.text[:200]}")


async def _load(base_url: str, tokens: list[str], duration_s: float, think_s: float) -> dict:
    out: dict = {"latency_ms": {"list": [], "verify": []}, "statuses": {}, "errors": [], "requests": 0}
    limits = httpx.Limits(max_connections=len(tokens) + 5, max_keepalive_connections=len(tokens) + 5)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        t0 = time.monotonic()
        stop_at = t0 + duration_s
        await asyncio.gather(
            *(_reviewer(client, tok, i, stop_at, think_s, out) for i, tok in enumerate(tokens))
        )
        out["elapsed_s"] = time.monotonic() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m api.bench")
    sub = p.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("load", help="the reviewers' side (a separate process from the server)")
    lp.add_argument("--base-url", required=True)
    lp.add_argument("--tokens", required=True, help="JSON list of bearer tokens, one per reviewer")
    lp.add_argument("--duration-s", type=float, default=20.0)
    lp.add_argument("--think-s", type=float, default=1.0)
    args = p.parse_args(argv)
    tokens = json.loads(Path(args.tokens).read_text())
    print(json.dumps(asyncio.run(_load(args.base_url, tokens, args.duration_s, args.think_s))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
