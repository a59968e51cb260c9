"""Evidence object store: MinIO/S3 in production, a directory in embedded mode, one interface.

Keys look like ``{camera_id}/{yyyy}/{mm}/{dd}/{case_id}/{n}-{clean|annotated|crop}.jpg``. Every ``put``
returns the SHA-256 of the bytes; callers store it in the ``evidence`` row and check it on read
(``read_evidence``). When the store is unreachable, ``put`` raises ``EvidenceStoreUnavailable`` and the
caller leaves the frames in the hand-off spool, which is retried until the store is back.

Each S3 store has a circuit breaker (``CircuitBreaker``): after one failed call every further call fails
at once, without touching the network, until a cool-down has passed; then a single probe call goes
through (half-open) and either closes the circuit or opens it again for twice as long. A hung store
therefore costs one time-out, not one per object. A bucket that disappears (a fresh MinIO, a restored
volume) is re-created with its object-lock settings on the next upload.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import os
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

import urllib3
import urllib3.exceptions
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import S3Error, ServerError
from minio.objectlockconfig import DAYS, ObjectLockConfig
from minio.retention import Retention

from urbaneye.settings import Settings, get_settings
from vision.digest import sha256_hex

log = logging.getLogger(__name__)

#: Presigned links must not outlive 15 minutes (evidence is personal data).
MAX_PRESIGN_EXPIRY_S = 900
VARIANTS = ("clean", "annotated", "crop")


class EvidenceStoreUnavailable(OSError):
    """The store could not be reached; retry later (the spool keeps the bytes)."""


class BucketMissing(EvidenceStoreUnavailable):
    """The store answers but the bucket is gone (a fresh MinIO, a restored volume)."""

    def __init__(self, bucket: str) -> None:
        super().__init__(f"evidence bucket {bucket} does not exist on the store")
        self.bucket = bucket


class CircuitOpen(EvidenceStoreUnavailable):
    """The store failed recently; the call was not tried (see ``CircuitBreaker``)."""


class EvidenceNotFound(KeyError):
    """No object under that key."""


class EvidenceIntegrityError(ValueError):
    """An object's bytes do not match the SHA-256 recorded in the database."""


class BreakerState(StrEnum):
    CLOSED = "closed"  # calls go through
    OPEN = "open"  # calls fail at once until the cool-down has passed
    HALF_OPEN = "half_open"  # one probe call is in flight; the others fail at once


@dataclass
class CircuitBreaker:
    """Fail fast after a failure; let one probe through per cool-down (doubling up to ``max_open_s``).

    Thread-safe; one per store and process. ``clock`` is ``time.monotonic`` (an argument for tests).

    Example:
        >>> b = CircuitBreaker("s3", open_s=1.0, clock=lambda: 0.0)
        >>> b.before_call(); b.failure("timed out"); b.state
        <BreakerState.OPEN: 'open'>
    """

    name: str
    open_s: float = 1.0
    max_open_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = BreakerState.CLOSED
    last_error: str = ""
    _opened_at: float = 0.0
    _current_open_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def retry_in_s(self) -> float:
        """Seconds until a probe may go (0 when closed or due)."""
        with self._lock:
            if self.state == BreakerState.CLOSED:
                return 0.0
            return max(0.0, self._opened_at + self._current_open_s - self.clock())

    def before_call(self) -> None:
        """Raise ``CircuitOpen`` unless this call may go (closed, or the one half-open probe)."""
        with self._lock:
            if self.state == BreakerState.CLOSED:
                return
            now = self.clock()
            if self.state == BreakerState.OPEN and now >= self._opened_at + self._current_open_s:
                self.state = BreakerState.HALF_OPEN  # this caller is the probe
                return
            wait_s = max(0.0, self._opened_at + self._current_open_s - now)
            raise CircuitOpen(
                f"{self.name} is unavailable (last error: {self.last_error}); not tried, next probe in "
                f"{wait_s:.1f}s; evidence stays in the spool and is uploaded when it is back"
            )

    def success(self) -> None:
        with self._lock:
            if self.state != BreakerState.CLOSED:
                log.info("%s is back; uploads resume", self.name)
            self.state = BreakerState.CLOSED
            self._current_open_s = 0.0
            self.last_error = ""

    def failure(self, error: str) -> None:
        with self._lock:
            was = self.state
            self.last_error = error
            if was == BreakerState.OPEN:
                return  # a call started before the circuit opened: the cool-down already runs
            # a failed probe doubles the cool-down: a store that stays down is probed ever less often
            self._current_open_s = (
                self.open_s if was == BreakerState.CLOSED else min(self.max_open_s, 2 * self._current_open_s)
            )
            self._opened_at = self.clock()
            self.state = BreakerState.OPEN
        if was == BreakerState.CLOSED:
            log.warning("%s failed (%s); further calls fail fast for %.1fs", self.name, error, self.open_s)


def evidence_key(camera_id: str, case_id: str, day: dt.date | dt.datetime, seq: int, variant: str) -> str:
    """Object key of one evidence image.

    Example:
        >>> evidence_key("cam-1", "ab12", dt.date(2024, 5, 1), 2, "crop")
        'cam-1/2024/05/01/ab12/2-crop.jpg'
    """
    if variant not in VARIANTS:
        raise ValueError(f"evidence variant {variant!r} is not one of {VARIANTS}")
    return f"{camera_id}/{day:%Y}/{day:%m}/{day:%d}/{case_id}/{int(seq)}-{variant}.jpg"


def _check_expiry(expiry_s: int) -> int:
    expiry_s = int(expiry_s)
    if not 1 <= expiry_s <= MAX_PRESIGN_EXPIRY_S:
        raise ValueError(
            f"presigned URL expiry {expiry_s}s is outside 1..{MAX_PRESIGN_EXPIRY_S}s (15 minutes)"
        )
    return expiry_s


@runtime_checkable
class EvidenceStore(Protocol):
    def ensure_ready(self) -> None:
        """Create buckets/directories (and object lock) if missing. Idempotent."""

    def put(
        self, key: str, data: bytes, content_type: str = "image/jpeg", metadata: dict | None = None
    ) -> str:
        """Store ``data`` under ``key``; return its SHA-256 hex digest."""

    def get(self, key: str) -> bytes:
        """The object's bytes. Compare with the database hash via ``read_evidence``."""

    def presigned_url(self, key: str, expiry_s: int = 600) -> str:
        """A GET link valid for ``expiry_s`` seconds (at most 900)."""

    def exists(self, key: str) -> bool: ...

    def available_in_s(self) -> float:
        """Seconds until the store may be tried again after a failure (0: now)."""


class FsEvidenceStore:
    """Evidence in a directory (embedded mode). Same interface as MinIO.

    With ``worm=True`` an existing object is never replaced by different bytes (write-once), mirroring
    object lock. Presigned URLs are relative API paths signed with HMAC (see ``verify_fs_presigned``).
    """

    def __init__(
        self, root: Path, secret: str, worm: bool = False, url_prefix: str = "/api/evidence/object"
    ) -> None:
        self.root = Path(root)
        self.secret = secret
        self.worm = worm
        self.url_prefix = url_prefix.rstrip("/")

    def ensure_ready(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"evidence key {key!r} escapes the store root; keys are relative paths")
        return path

    def put(
        self, key: str, data: bytes, content_type: str = "image/jpeg", metadata: dict | None = None
    ) -> str:
        digest = sha256_hex(data)
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                if sha256_hex(path.read_bytes()) == digest:
                    return digest  # same bytes again (redelivery): nothing to do
                if self.worm:
                    raise PermissionError(
                        f"evidence object {key} is write-once and already holds other bytes"
                    )
            meta = {"content_type": content_type, "sha256": digest, **(metadata or {})}
            _atomic_write(path.with_name(path.name + ".meta.json"), json.dumps(meta).encode())
            _atomic_write(path, data)
        except PermissionError:
            raise
        except OSError as exc:
            raise EvidenceStoreUnavailable(f"evidence directory {self.root} not writable: {exc}") from exc
        return digest

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise EvidenceNotFound(key) from None

    def metadata(self, key: str) -> dict:
        path = self._path(key)
        try:
            return json.loads(path.with_name(path.name + ".meta.json").read_text())
        except FileNotFoundError:
            raise EvidenceNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def available_in_s(self) -> float:
        return 0.0

    def presigned_url(self, key: str, expiry_s: int = 600) -> str:
        expires = int(time.time()) + _check_expiry(expiry_s)
        sig = _fs_signature(self.secret, key, expires)
        query = urllib.parse.urlencode({"expires": expires, "signature": sig})
        return f"{self.url_prefix}/{urllib.parse.quote(key)}?{query}"


def _fs_signature(secret: str, key: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()


def verify_fs_presigned(key: str, expires: int, signature: str, secret: str | None = None) -> bool:
    """True if an ``FsEvidenceStore`` link for ``key`` is authentic and not expired (for the API route)."""
    secret = secret if secret is not None else get_settings().secret_key
    if int(expires) < time.time():
        return False
    return hmac.compare_digest(_fs_signature(secret, key, int(expires)), signature)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file + fsync + rename so a crash never leaves a half-written object."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MinioEvidenceStore:
    """Evidence in MinIO (or any S3) through the ``minio`` SDK.

    With ``object_lock`` the bucket is created with object lock (WORM) and a default retention rule,
    and every object is written with an explicit retention of ``retention_days`` in ``lock_mode``.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
        object_lock: bool = False,
        lock_mode: str = "GOVERNANCE",
        retention_days: int = 365,
        timeout_s: float = 5.0,
        extra_buckets: tuple[str, ...] = (),
    ) -> None:
        # Short timeouts, and a retry only where it is cheap (a refused connection, a 50x): a read that
        # timed out is not repeated, so a hung store costs one time-out before the breaker opens.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s * 3),
            retries=urllib3.Retry(
                total=1, connect=1, read=0, backoff_factor=0.1, status_forcelist=[502, 503, 504]
            ),
            maxsize=10,
        )
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self.object_lock = object_lock
        self.lock_mode = lock_mode
        self.retention_days = retention_days
        self.extra_buckets = extra_buckets
        self._ready = False
        self.breaker = CircuitBreaker(f"S3 endpoint {endpoint}", open_s=max(1.0, timeout_s))

    @classmethod
    def from_settings(cls, s: Settings) -> MinioEvidenceStore:
        return cls(
            s.s3_endpoint,
            s.s3_access_key,
            s.s3_secret_key,
            s.s3_bucket,
            secure=s.s3_secure,
            region=s.s3_region,
            object_lock=s.s3_object_lock,
            lock_mode=s.s3_lock_mode,
            retention_days=s.s3_retention_days,
            timeout_s=s.s3_timeout_s,
            extra_buckets=(s.s3_datasets_bucket,),
        )

    def _call(self, what: str, fn, *args, **kwargs):  # noqa: ANN001, ANN202 - thin error translation
        self.breaker.before_call()
        try:
            result = fn(*args, **kwargs)
        except S3Error as exc:
            self.breaker.success()  # the store answered
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise EvidenceNotFound(args[1] if len(args) > 1 else what) from None
            if exc.code == "NoSuchBucket":
                self._ready = False
                raise BucketMissing(exc.bucket_name or self.bucket) from None
            raise
        except (ServerError, urllib3.exceptions.HTTPError, OSError) as exc:
            self.breaker.failure(f"{what}: {exc}")
            raise EvidenceStoreUnavailable(
                f"S3 endpoint {self.endpoint} unreachable during {what}: {exc}; "
                "evidence stays in the spool and is uploaded when it is back"
            ) from exc
        except BaseException:
            # not an answer from the store (e.g. a Celery soft time limit): give the probe back
            self.breaker.failure(f"{what} interrupted")
            raise
        self.breaker.success()
        return result

    def ensure_ready(self) -> None:
        if self._ready:
            return
        if not self._call("bucket check", self.client.bucket_exists, self.bucket):
            try:
                self._call(
                    "bucket create",
                    self.client.make_bucket,
                    self.bucket,
                    location=self.region,
                    object_lock=self.object_lock,
                )
            except S3Error as exc:
                raise EvidenceStoreUnavailable(
                    f"evidence bucket {self.bucket} does not exist on {self.endpoint} and could "
                    f"not be created ({exc.code}: {exc.message}); create it"
                    + (" with object lock (mc mb --with-lock)" if self.object_lock else "")
                    + " or give these credentials s3:CreateBucket; evidence waits in the spool"
                ) from exc
            log.warning("created evidence bucket %s (object lock %s)", self.bucket, self.object_lock)
        if self.object_lock:
            self._ensure_lock_config()
        for name in self.extra_buckets:
            if name and not self._call("bucket check", self.client.bucket_exists, name):
                self._call("bucket create", self.client.make_bucket, name, location=self.region)
        self._ready = True

    def _ensure_lock_config(self) -> None:
        """Default retention on the bucket; objects also carry their own retention (see ``put``)."""
        mode = COMPLIANCE if self.lock_mode == "COMPLIANCE" else GOVERNANCE
        try:
            current = self._call("object lock config", self.client.get_object_lock_config, self.bucket)
            if (
                current.mode == mode
                and int(current.duration or 0) == self.retention_days
                and (str(current.duration_unit).upper() == DAYS.upper())
            ):
                return
        except S3Error as exc:
            if exc.code == "ObjectLockConfigurationNotFoundError":
                raise RuntimeError(
                    f"bucket {self.bucket} exists without object lock, which S3 cannot add later; "
                    "use a new bucket (URBANEYE_S3_BUCKET) or set URBANEYE_S3_OBJECT_LOCK=false"
                ) from None
            raise
        try:
            self._call(
                "object lock config",
                self.client.set_object_lock_config,
                self.bucket,
                ObjectLockConfig(mode, self.retention_days, DAYS),
            )
        except S3Error as exc:  # every object still gets its own retention in put()
            log.error("could not set default retention on bucket %s: %s", self.bucket, exc)

    def put(
        self, key: str, data: bytes, content_type: str = "image/jpeg", metadata: dict | None = None
    ) -> str:
        self.ensure_ready()
        digest = sha256_hex(data)
        meta = {
            "sha256": digest,
            **{k: str(v) for k, v in (metadata or {}).items()},
            # S3 checks the body against our hash on arrival; object lock requires an integrity header.
            "x-amz-sdk-checksum-algorithm": "SHA256",
            "x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(digest)).decode(),
        }
        retention = None
        if self.object_lock:
            until = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=self.retention_days)
            retention = Retention(COMPLIANCE if self.lock_mode == "COMPLIANCE" else GOVERNANCE, until)

        def put_once() -> None:
            self._call(
                "put",
                self.client.put_object,
                self.bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type=content_type,
                metadata=meta,
                retention=retention,
            )

        try:
            put_once()
        except BucketMissing:
            # A fresh MinIO or a restored volume: re-create the bucket (object lock included), then upload.
            log.error("evidence bucket %s has gone from the store; re-creating it", self.bucket)
            self.ensure_ready()
            put_once()
        return digest

    def get(self, key: str) -> bytes:
        resp = self._call("get", self.client.get_object, self.bucket, key)
        try:
            return resp.read()
        finally:
            resp.close()
            resp.release_conn()

    def stat(self, key: str):  # noqa: ANN201 - minio Object
        return self._call("stat", self.client.stat_object, self.bucket, key)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
            return True
        except EvidenceNotFound:
            return False

    def available_in_s(self) -> float:
        return self.breaker.retry_in_s()

    def presigned_url(self, key: str, expiry_s: int = 600) -> str:
        expiry = dt.timedelta(seconds=_check_expiry(expiry_s))
        # Signed locally (the region is configured): no network call, so not behind the breaker.
        return self.client.presigned_get_object(self.bucket, key, expires=expiry)


_stores: dict[tuple, EvidenceStore] = {}

#: Non-evidence buckets (datasets, model files) hold large objects: their S3 calls get at least this long.
BULK_TIMEOUT_S = 30.0


def get_store(settings: Settings | None = None, bucket: str | None = None) -> EvidenceStore:
    """The one store factory: the configured evidence store, or an S3 store over another ``bucket``.

    Without ``bucket``: the evidence store of ``settings`` (S3 or a directory), one per settings
    combination and process. With ``bucket`` (the datasets bucket, where datasets and registered model
    files live): a fresh, ready S3 store over it with the evidence store's credentials, no object lock
    (not evidence) and a time-out of at least ``BULK_TIMEOUT_S``.

    Example:
        >>> get_store(settings, bucket=settings.s3_datasets_bucket).get("models/v1/model.onnx")  # doctest: +SKIP
    """
    s = settings or get_settings()
    if bucket is not None:
        store = MinioEvidenceStore(
            s.s3_endpoint,
            s.s3_access_key,
            s.s3_secret_key,
            bucket,
            secure=s.s3_secure,
            region=s.s3_region,
            timeout_s=max(float(s.s3_timeout_s), BULK_TIMEOUT_S),
        )
        store.ensure_ready()
        return store
    if s.evidence_backend == "s3":
        ident: tuple = ("s3", s.s3_endpoint, s.s3_bucket, s.s3_access_key, s.s3_object_lock, s.s3_timeout_s)
        if ident not in _stores:
            _stores[ident] = MinioEvidenceStore.from_settings(s)
    else:
        ident = ("fs", str(s.evidence_dir), s.s3_object_lock)
        if ident not in _stores:
            store = FsEvidenceStore(s.evidence_dir, s.secret_key, worm=s.s3_object_lock)
            store.ensure_ready()
            _stores[ident] = store
    return _stores[ident]


def read_evidence(store: EvidenceStore, key: str, expected_sha256: str) -> bytes:
    """Read an object and check it against the hash recorded in the database."""
    data = store.get(key)
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise EvidenceIntegrityError(
            f"evidence object {key} has sha256 {actual[:16]}…, database says {expected_sha256[:16]}…; "
            "the object was altered or replaced"
        )
    return data
