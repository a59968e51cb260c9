"""All settings in one place, read from ``URBANEYE_*`` environment variables (see docs/settings.md).

Embedded defaults (SQLite file, local evidence store, in-process broker) make ``urbaneye run`` work on a
fresh machine; production sets the database, broker, S3 and hotline variables.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP_MODEL = REPO_ROOT / "models" / "bootstrap" / "urbaneye-bootstrap.onnx"
DEMO_CAMERAS = REPO_ROOT / "datasets" / "demo" / "cameras.yaml"

_DEV_SECRET = "dev-insecure-change-me"
PUSH_POLICIES = ("after_review", "immediate")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="URBANEYE_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Field(REPO_ROOT / "var", description="local state: SQLite file, spool, evidence store")

    # database
    database_url: str = Field("", description="SQLAlchemy URL; empty = SQLite file in data_dir")

    # broker: 'memory://' runs Celery tasks eagerly in-process (embedded default)
    broker_url: str = Field(
        "memory://", description="redis://host:6379/0 or amqp://guest@host// in production"
    )
    result_backend: str = Field("", description="Celery result backend; empty = none (state lives in the DB)")
    broker_visibility_timeout_s: Annotated[int, Field(ge=5, le=86400)] = Field(
        3600, description="Redis: an unacknowledged task is redelivered after this long (worker killed)"
    )
    task_time_limit_s: Annotated[int, Field(ge=5, le=3600)] = Field(
        120, description="hard time limit of case and hotline tasks"
    )
    spool_resend_after_s: Annotated[float, Field(ge=0.5, le=86400)] = Field(
        30.0, description="relay re-sends a spooled violation not yet turned into a case after this long"
    )
    relay_interval_s: Annotated[float, Field(ge=0.05, le=600)] = Field(
        1.0, description="how often the relay scans the spool and the outbox"
    )

    # evidence store
    evidence_backend: Literal["fs", "s3"] = "fs"
    s3_endpoint: str = Field("127.0.0.1:9000", description="host:port of MinIO / S3")
    s3_access_key: str = "minioadmin"
    s3_secret_key: str = "minioadmin"
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    s3_bucket: str = "urbaneye-evidence"
    s3_datasets_bucket: str = "urbaneye-datasets"
    s3_object_lock: bool = False
    s3_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = "GOVERNANCE"
    s3_retention_days: Annotated[int, Field(ge=1, le=36500)] = 365
    presign_expiry_s: Annotated[int, Field(ge=30, le=900)] = 600
    s3_timeout_s: Annotated[float, Field(gt=0, le=120)] = Field(
        5.0, description="connect/read timeout; on failure evidence waits in the spool"
    )

    # hotline / 数字城管 intake
    hotline_url: str = Field("", description="HTTP JSON intake; empty = cases stay queued")
    hotline_secret: str = _DEV_SECRET
    hotline_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    hotline_max_retries: Annotated[int, Field(ge=0, le=50)] = 8
    hotline_backoff_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        5.0, description="first retry delay; doubles per attempt (exponential backoff)"
    )
    hotline_backoff_max_s: Annotated[float, Field(gt=0, le=86400)] = 600.0
    outbox_lease_s: Annotated[float, Field(ge=1, le=3600)] = Field(
        60.0, description="a dispatched outbox row is sent again if its task has not finished by then"
    )
    hotline_callback_tolerance_s: Annotated[int, Field(ge=10, le=3600)] = Field(
        300, description="max clock skew of a signed hotline callback's timestamp"
    )
    bike_operator_url: str = Field("", description="intake of the shared-bike operator, if routed")
    push_policy: str = Field(
        "",
        description="per-kind push policy, e.g. 'open_air_barbecue=immediate'; default is after_review",
    )

    # API / auth
    secret_key: str = _DEV_SECRET
    access_token_ttl_s: Annotated[int, Field(ge=60, le=86400)] = 3600
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    login_max_failures: Annotated[int, Field(ge=1, le=100)] = 5
    login_lockout_s: Annotated[int, Field(ge=1, le=86400)] = 300

    # models
    model_path: Path = Field(BOOTSTRAP_MODEL, description="default ONNX detector")
    models_dir: Path = Field(REPO_ROOT / "var" / "models", description="registry artefacts")

    # streams
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9108
    worker_id: str = ""
    lease_ttl_s: Annotated[float, Field(ge=2, le=600)] = 15.0
    redis_url: str = Field("", description="for camera leases; empty = leases in the database")

    @model_validator(mode="after")
    def verify_secrets(self) -> Settings:
        if self.environment == "production":
            for name in ("secret_key", "hotline_secret"):
                if getattr(self, name) == _DEV_SECRET:
                    raise ValueError(f"URBANEYE_{name.upper()} must be set to a real secret in production")
        return self

    @model_validator(mode="after")
    def verify_push_policy(self) -> Settings:
        self.push_policies()  # raises with the bad item named
        return self

    def push_policies(self) -> dict[str, str]:
        """``push_policy`` parsed: violation kind -> ``after_review`` | ``immediate``."""
        from vision.types import ViolationKind

        kinds = {str(k) for k in ViolationKind}
        out: dict[str, str] = {}
        for item in filter(None, (p.strip() for p in self.push_policy.split(","))):
            kind, _, policy = (x.strip() for x in item.partition("="))
            if kind not in kinds:
                raise ValueError(
                    f"URBANEYE_PUSH_POLICY names unknown kind {kind!r}; use one of {sorted(kinds)}"
                )
            if policy not in PUSH_POLICIES:
                raise ValueError(
                    f"URBANEYE_PUSH_POLICY gives {kind}={policy!r}; use one of {list(PUSH_POLICIES)}"
                )
            out[kind] = policy
        return out

    def push_policy_for(self, kind: str) -> str:
        return self.push_policies().get(str(kind), "after_review")

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'urbaneye.db'}"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def evidence_dir(self) -> Path:
        return self.data_dir / "evidence"


@lru_cache
def get_settings() -> Settings:
    return Settings()
