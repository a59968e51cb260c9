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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="URBANEYE_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Field(REPO_ROOT / "var", description="local state: SQLite file, spool, evidence store")

    # database
    database_url: str = Field("", description="SQLAlchemy URL; empty = SQLite file in data_dir")

    # broker: 'memory://' runs Celery tasks eagerly in-process (embedded default)
    broker_url: str = Field("memory://", description="redis://host:6379/0 or amqp://guest@host// in production")
    result_backend: str = Field("", description="Celery result backend; empty = none (state lives in the DB)")

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

    # hotline / 数字城管 intake
    hotline_url: str = Field("", description="HTTP JSON intake; empty = cases stay queued")
    hotline_secret: str = _DEV_SECRET
    hotline_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    hotline_max_retries: Annotated[int, Field(ge=0, le=50)] = 8
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
