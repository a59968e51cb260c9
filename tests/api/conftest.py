"""API fixtures: a PostgreSQL database with the schema, the app, users with each role, case factories
with real evidence images in the local evidence store."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from tests.conftest import scratch_database

PASSWORDS = {
    "admin": "admin-pass-1",
    "reviewer": "review-pass-1",
    "viewer": "viewer-pass-1",
    "service": "service-pass-1",
}


SECRET = "test-secret-key-for-api-tests-0123456789"


@pytest.fixture
def api_settings(settings_env, pg_url):  # noqa: ANN001, ANN201
    settings = settings_env(database_url=pg_url, secret_key=SECRET)
    from api.cli import ensure_schema

    ensure_schema(pg_url)
    return settings


@pytest.fixture(scope="module")
def module_app(tmp_path_factory) -> Iterator:  # noqa: ANN001
    """An app, its database with one user per role, and a TestClient, shared by a module's tests
    (for route-table sweeps that only read)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.cli import ensure_schema
    from urbaneye.settings import Settings

    with scratch_database() as url:
        settings = Settings(
            environment="test", database_url=url, secret_key=SECRET, data_dir=tmp_path_factory.mktemp("var")
        )
        ensure_schema(url)
        app = create_app(settings)
        session = app.state.sessionmaker()
        users = _make_users(session, settings)
        with TestClient(app) as client:
            yield app, client, users, session
        session.close()


@pytest.fixture
def app(api_settings):  # noqa: ANN001, ANN201
    from api.app import create_app

    return create_app(api_settings)


@pytest.fixture
def use_cameras_file(app):  # noqa: ANN001, ANN201
    """Have the app list a cameras file's configured kinds (``Settings.cameras_file``, as ``urbaneye run`` sets it)."""

    def apply(path) -> None:  # noqa: ANN001
        app.state.settings = app.state.settings.model_copy(update={"cameras_file": path})

    return apply


@pytest.fixture
def db(app) -> Iterator:  # noqa: ANN001
    session = app.state.sessionmaker()
    yield session
    session.close()


@pytest.fixture
def store(api_settings):  # noqa: ANN001, ANN201
    from urbaneye.storage import get_store

    return get_store(api_settings)


@dataclass
class Users:
    by_role: dict
    tokens: dict

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
def users(db, api_settings) -> Users:  # noqa: ANN001
    return _make_users(db, api_settings)


def _make_users(db, settings) -> Users:  # noqa: ANN001
    from api.auth import create_user, issue_token

    by_role, tokens = {}, {}
    for role, password in PASSWORDS.items():
        user = create_user(db, f"{role}1", password, role, f"{role} one")
        by_role[role] = user
    db.commit()
    for role, user in by_role.items():
        kind = "service" if role == "service" else "access"
        tokens[role] = issue_token(user, settings, kind=kind).token
    return Users(by_role, tokens)


@pytest.fixture
def client(app) -> Iterator:  # noqa: ANN001
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


def scene_jpeg(text: str, w: int = 480, h: int = 270, seed: int = 0, box: tuple | None = None) -> bytes:
    """A small street-like picture: road, kerb, a 'stall' box; ``box`` drawn as an annotation."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), (95, 100, 105), np.uint8)
    cv2.rectangle(img, (0, int(h * 0.55)), (w, h), (70, 72, 75), -1)  # road
    cv2.rectangle(img, (0, int(h * 0.5)), (w, int(h * 0.55)), (160, 160, 160), -1)  # kerb
    for i in range(6):  # shop fronts
        x = i * w // 6
        colour = tuple(int(c) for c in rng.integers(60, 200, 3))
        cv2.rectangle(img, (x + 4, int(h * 0.1)), (x + w // 6 - 4, int(h * 0.5)), colour, -1)
    cv2.rectangle(
        img, (int(w * 0.4), int(h * 0.45)), (int(w * 0.58), int(h * 0.7)), (30, 120, 200), -1
    )  # stall
    cv2.circle(img, (int(w * 0.62), int(h * 0.5)), int(h * 0.06), (40, 40, 40), -1)  # person head
    if box is not None:
        cv2.rectangle(img, box[:2], box[2:], (0, 0, 255), 3)
    cv2.putText(img, text, (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return buf.tobytes()


_seq = itertools.count(1)


@pytest.fixture
def make_case(db, store) -> Callable:  # noqa: ANN001
    """Create a case (with clean/annotated/crop evidence for seq 1 and 2 in the store)."""
    from urbaneye.db.models import Case, Evidence
    from urbaneye.storage import evidence_key

    def make(
        camera_id: str = "cam-1",
        zone_id: str = "z-gate",
        kind: str = "street_vending",
        status: str = "pending_review",
        escalation: str = "blue",
        confidence: float = 0.8,
        created_at: dt.datetime | None = None,
        evidence: bool = True,
        **fields: object,
    ) -> Case:
        n = next(_seq)
        created_at = created_at or dt.datetime(2024, 5, 1, 2, 0, tzinfo=dt.UTC) + dt.timedelta(minutes=n)
        case = Case(
            violation_id=f"v-{n}-{camera_id}",
            camera_id=camera_id,
            zone_id=zone_id,
            place_key=f"{camera_id}/{zone_id}",
            kind=kind,
            gbt_code="0501",
            gbt_name="无照经营游商",
            address="人民路与滨河路口东北角",
            started_at=created_at - dt.timedelta(minutes=5),
            duration_s=312.0,
            confidence=confidence,
            model_version="bootstrap-abc123",
            escalation=escalation,
            bbox_xyxy=[192.0, 121.0, 278.0, 189.0],
            frame_wh=[480, 270],
            description=f"人民路占道经营 #{n}",
            status=status,
            created_at=created_at,
            corrections=[],
            **fields,
        )
        db.add(case)
        db.flush()
        if evidence:
            for seq in (1, 2):
                for variant in ("clean", "annotated", "crop"):
                    box = (192, 121, 278, 189) if variant == "annotated" else None
                    data = scene_jpeg(f"case {n} seq {seq} {variant}", seed=n, box=box)
                    if variant == "crop":
                        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[100:210, 170:300]
                        data = cv2.imencode(".jpg", img)[1].tobytes()
                    key = evidence_key(camera_id, case.id, created_at, seq, variant)
                    digest = store.put(key, data)
                    case.evidence.append(
                        Evidence(
                            seq=seq,
                            variant=variant,
                            key=key,
                            sha256=digest,
                            size_bytes=len(data),
                            frame_ts=created_at,
                            uploaded=True,
                        )
                    )
        db.commit()
        return case

    return make


@pytest.fixture
def make_camera(db) -> Callable:  # noqa: ANN001
    from urbaneye.db.models import Camera, Zone
    from vision.config import CameraConfig

    def make(camera_id: str = "cam-1", zones: list[dict] | None = None, **src: object) -> Camera:
        zones = (
            zones
            if zones is not None
            else [
                {
                    "id": "z-gate",
                    "name": "人民路北口",
                    "kind": "no_vending",
                    "polygon": [[0.1, 0.5], [0.9, 0.5], [0.9, 0.95], [0.1, 0.95]],
                }
            ]
        )
        cfg = CameraConfig.model_validate(
            {
                "id": camera_id,
                "name": f"人民路 {camera_id}",
                "source": {
                    "url": "rtsp://10.0.0.5/stream1",
                    "username": "cam",
                    "password": "s3cret-pw",
                    **src,
                },
                "location": {"address": "人民路与滨河路口东北角"},
                "zones": zones,
            }
        )
        cam = Camera(
            id=camera_id,
            name=cfg.name,
            group=cfg.group,
            config=cfg.model_dump(mode="json", exclude={"zones"}),
        )
        cam.zones = [Zone(zone_id=z.id, config=z.model_dump(mode="json")) for z in cfg.zones]
        db.add(cam)
        db.commit()
        return cam

    return make


@pytest.fixture
def live_server() -> Iterator[Callable]:
    """Serve an app with uvicorn on a free 127.0.0.1 port in a thread of this process; returns its base
    URL. Clients may connect from 127.0.0.2 too (both loopback) to act as a second address."""
    import threading
    import time

    import uvicorn

    from tests.conftest import free_port

    servers: list[tuple] = []

    def serve(app, log_level: str = "warning", port: int | None = None) -> str:  # noqa: ANN001
        port = port or free_port()  # a given port: the app's own URL was handed out before it started
        srv = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, log_level=log_level, lifespan="off", proxy_headers=False
            )
        )
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not srv.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert thread.is_alive(), "uvicorn exited while starting"
            time.sleep(0.05)
        servers.append((srv, thread))
        return f"http://127.0.0.1:{port}"

    yield serve
    for srv, thread in servers:
        srv.should_exit = True
        thread.join(10)


def app_users(app) -> Users:  # noqa: ANN001
    """One user per role in ``app``'s database (``PASSWORDS``), with tokens."""
    session = app.state.sessionmaker()
    try:
        return _make_users(session, app.state.settings)
    finally:
        session.close()
