"""Evidence stores: the filesystem store and MinIO SDK against moto's S3 server over HTTP."""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest

from tests.urbaneye.conftest import tiny_jpeg
from urbaneye.storage import (
    BULK_TIMEOUT_S,
    EvidenceIntegrityError,
    EvidenceNotFound,
    EvidenceStoreUnavailable,
    FsEvidenceStore,
    MinioEvidenceStore,
    evidence_key,
    get_store,
    read_evidence,
    verify_fs_presigned,
)
from vision.digest import sha256_hex


@pytest.fixture
def minio_store(s3_server):
    httpx.post(f"http://{s3_server['endpoint']}/moto-api/reset", timeout=10)
    store = MinioEvidenceStore(
        s3_server["endpoint"], s3_server["access_key"], s3_server["secret_key"], "ue-evidence",
        object_lock=True, lock_mode="COMPLIANCE", retention_days=30, timeout_s=1, extra_buckets=("ue-datasets",),
    )  # fmt: skip
    store.ensure_ready()
    return store


def test_key_layout():
    assert (
        evidence_key("cam-9", "c1", dt.date(2024, 12, 3), 1, "annotated")
        == "cam-9/2024/12/03/c1/1-annotated.jpg"
    )
    with pytest.raises(ValueError, match="variant"):
        evidence_key("cam-9", "c1", dt.date(2024, 12, 3), 1, "thumb")


def test_minio_bucket_has_object_lock_and_objects_carry_retention_and_metadata(minio_store, s3_server):
    jpeg = tiny_jpeg(1)
    key = "cam-1/2024/06/01/c1/1-clean.jpg"
    assert minio_store.put(key, jpeg, "image/jpeg", {"case-id": "c1"}) == sha256_hex(jpeg)
    cfg = minio_store.client.get_object_lock_config("ue-evidence")
    assert (cfg.mode, cfg.duration[0] if isinstance(cfg.duration, tuple) else cfg.duration) == (
        "COMPLIANCE",
        30,
    )
    stat = minio_store.stat(key)
    # moto has no GET ?retention; the object's lock headers carry the same facts
    assert stat.metadata["x-amz-object-lock-mode"] == "COMPLIANCE"
    until = dt.datetime.fromisoformat(
        stat.metadata["x-amz-object-lock-retain-until-date"].replace("Z", "+00:00")
    )
    assert until > dt.datetime.now(dt.UTC) + dt.timedelta(days=29)
    assert stat.content_type == "image/jpeg"
    assert stat.metadata["x-amz-meta-sha256"] == sha256_hex(jpeg)
    assert stat.metadata["x-amz-meta-case-id"] == "c1"
    assert minio_store.client.bucket_exists("ue-datasets")
    # WORM: the locked version cannot be deleted
    from minio.error import S3Error

    with pytest.raises(S3Error):
        minio_store.client.remove_object("ue-evidence", key, version_id=stat.version_id)
    assert read_evidence(minio_store, key, sha256_hex(jpeg)) == jpeg


def test_presigned_url_expires_within_15_minutes_and_serves_the_object(minio_store):
    key = "cam-1/2024/06/01/c1/2-crop.jpg"
    minio_store.put(key, b"\xff\xd8crop", "image/jpeg")
    url = minio_store.presigned_url(key, 900)
    assert "X-Amz-Expires=900" in url
    assert httpx.get(url).content == b"\xff\xd8crop"
    with pytest.raises(ValueError, match="15 minutes"):
        minio_store.presigned_url(key, 901)


def test_altered_object_is_detected(minio_store):
    key = "cam-1/2024/06/01/c1/1-crop.jpg"
    digest = minio_store.put(key, b"original")
    minio_store.put(key, b"tampered")  # a new version on top (what a tamperer with write access can do)
    with pytest.raises(EvidenceIntegrityError, match="altered"):
        read_evidence(minio_store, key, digest)
    with pytest.raises(EvidenceNotFound):
        minio_store.get("cam-1/none.jpg")


def test_unreachable_s3_fails_fast_with_a_clear_error(minio_store, s3_server):
    s3_server["server"].stop()
    try:
        with pytest.raises(EvidenceStoreUnavailable, match="unreachable during put"):
            minio_store.put("cam-1/x.jpg", b"x")
    finally:
        s3_server["server"].start()


def test_fs_store_is_write_once_and_signs_links(tmp_path):
    store = FsEvidenceStore(tmp_path / "ev", secret="k", worm=True)
    store.ensure_ready()
    digest = store.put("cam-1/a.jpg", b"one", "image/jpeg", {"case-id": "c"})
    assert store.put("cam-1/a.jpg", b"one") == digest  # same bytes again: fine
    with pytest.raises(PermissionError, match="write-once"):
        store.put("cam-1/a.jpg", b"two")
    assert store.metadata("cam-1/a.jpg")["sha256"] == digest
    url = store.presigned_url("cam-1/a.jpg", 60)
    q = dict(p.split("=") for p in url.split("?")[1].split("&"))
    assert verify_fs_presigned("cam-1/a.jpg", int(q["expires"]), q["signature"], secret="k")
    assert not verify_fs_presigned("cam-1/b.jpg", int(q["expires"]), q["signature"], secret="k")
    assert not verify_fs_presigned("cam-1/a.jpg", int(time.time()) - 1, q["signature"], secret="k")
    with pytest.raises(ValueError, match="escapes"):
        store.put("../../etc/x.jpg", b"x")


def test_get_store_over_another_bucket_is_a_plain_s3_store(s3_server, settings_env):
    """The one factory: a bucket name gives an S3 store over it (datasets, model files), never locked."""
    httpx.post(f"http://{s3_server['endpoint']}/moto-api/reset", timeout=10)
    settings = settings_env(
        evidence_backend="s3",
        s3_endpoint=s3_server["endpoint"],
        s3_access_key=s3_server["access_key"],
        s3_secret_key=s3_server["secret_key"],
        s3_region=s3_server["region"],
        s3_timeout_s=2,
    )
    store = get_store(settings, bucket="ue-models")
    assert store.bucket == "ue-models" and store.object_lock is False
    assert store.breaker.open_s == BULK_TIMEOUT_S  # large objects: at least the bulk time-out, not 2 s
    data = b"onnx bytes"
    assert store.put("models/v1/model.onnx", data, "application/octet-stream") == sha256_hex(data)
    assert store.get("models/v1/model.onnx") == data
    assert get_store(settings).bucket == settings.s3_bucket  # without a bucket: the evidence store
