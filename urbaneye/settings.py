"""All settings in one place, read from ``URBANEYE_*`` environment variables (see docs/settings.md).

Embedded defaults (SQLite file, local evidence store, in-process broker) make ``urbaneye run`` work on a
fresh machine; production sets the database, broker, S3 and hotline variables.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal, get_args, get_origin

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vision.types import ViolationKind

REPO_ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP_MODEL = REPO_ROOT / "models" / "bootstrap" / "urbaneye-bootstrap.onnx"
DEMO_CAMERAS = REPO_ROOT / "datasets" / "demo" / "cameras.yaml"

_DEV_SECRET = "dev-insecure-change-me"
#: Production refuses secrets shorter than this (bytes, UTF-8).
MIN_SECRET_BYTES = 32
#: Values seen in examples, compose files and tutorials: never a production secret.
KNOWN_DEFAULT_SECRETS = frozenset(
    {_DEV_SECRET, "changeme", "change-me", "secret", "password", "minioadmin", "admin", "test"}
)
#: MinIO's out-of-the-box root credentials.
DEFAULT_S3_CREDENTIALS = frozenset({"minioadmin", ""})
MAKE_SECRET_HINT = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
PUSH_POLICIES = ("after_review", "immediate")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="URBANEYE_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = Field(
        "development", description="development | test | production (production refuses default secrets)"
    )
    data_dir: Path = Field(REPO_ROOT / "var", description="local state: SQLite file, spool, evidence store")
    cameras_file: Path | None = Field(
        None,
        description="the cameras file the workers run; the API lists its violations: as kinds (urbaneye run sets it)",
    )

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
    node_name: str = Field(
        "",
        description="this machine's name: its case tasks go to queue cases.<node_name>, which only its own "
        "worker (it has the spool) consumes; empty = the host name",
    )

    # evidence store
    evidence_backend: Literal["fs", "s3"] = Field(
        "fs", description="fs = directory in data_dir (embedded); s3 = MinIO/S3 through the minio SDK"
    )
    s3_endpoint: str = Field("127.0.0.1:9000", description="host:port of MinIO / S3")
    s3_access_key: str = Field("minioadmin", description="S3 access key")
    s3_secret_key: str = Field("minioadmin", description="S3 secret key")
    s3_secure: bool = Field(False, description="use HTTPS to reach S3")
    s3_region: str = Field(
        "us-east-1", description="S3 region (MinIO ignores it; set it to skip a region lookup)"
    )
    s3_bucket: str = Field("urbaneye-evidence", description="evidence bucket, created at start-up")
    s3_datasets_bucket: str = Field(
        "urbaneye-datasets", description="bucket for training datasets, created at start-up"
    )
    s3_object_lock: bool = Field(
        False,
        description="create the evidence bucket with object lock (WORM) and a retention on every object",
    )
    s3_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = Field(
        "GOVERNANCE", description="object lock mode: GOVERNANCE (admins may lift) or COMPLIANCE (nobody may)"
    )
    s3_retention_days: Annotated[int, Field(ge=1, le=36500)] = Field(
        365, description="object lock retention of evidence, days"
    )
    presign_expiry_s: Annotated[int, Field(ge=30, le=900)] = Field(
        600, description="lifetime of presigned evidence links, seconds (at most 15 minutes)"
    )
    s3_timeout_s: Annotated[float, Field(gt=0, le=120)] = Field(
        5.0, description="connect/read timeout; on failure evidence waits in the spool"
    )

    # hotline / 数字城管 intake
    hotline_url: str = Field("", description="HTTP JSON intake; empty = cases stay queued")
    hotline_secret: str = Field(
        _DEV_SECRET, description="HMAC-SHA256 key signing our pushes and verifying hotline callbacks"
    )
    hotline_timeout_s: Annotated[float, Field(gt=0, le=120)] = Field(
        10.0, description="HTTP time-out of one push, seconds"
    )
    hotline_max_retries: Annotated[int, Field(ge=0, le=50)] = Field(
        8, description="retries after the first failed push before the case is dead-lettered"
    )
    hotline_backoff_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        5.0, description="first retry delay; doubles per attempt (exponential backoff)"
    )
    hotline_backoff_max_s: Annotated[float, Field(gt=0, le=86400)] = Field(
        600.0, description="upper bound of the retry delay, seconds"
    )
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
    secret_key: str = Field(_DEV_SECRET, description="signs API tokens and filesystem evidence links")
    access_token_ttl_s: Annotated[int, Field(ge=60, le=86400)] = Field(
        3600, description="API token lifetime, seconds"
    )
    host: str = Field("127.0.0.1", description="API listen address")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(8000, description="API listen port")
    login_max_failures: Annotated[int, Field(ge=1, le=100)] = Field(
        5,
        description="failed logins of one username from one address before each further try waits "
        "(1 s, doubling each failure, at most login_lockout_s)",
    )
    login_lockout_s: Annotated[int, Field(ge=1, le=86400)] = Field(
        300,
        description="longest wait between login tries after failures; failures older than this are forgotten",
    )

    # models
    model_path: Path = Field(BOOTSTRAP_MODEL, description="default ONNX detector")
    models_dir: Path = Field(REPO_ROOT / "var" / "models", description="registry artefacts")

    # streams
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        9108, description="Prometheus metrics port of the stream worker (0 = off)"
    )
    worker_id: str = Field(
        "", description="stream worker id for camera leases; empty = derived from host and process"
    )
    lease_ttl_s: Annotated[float, Field(ge=2, le=600)] = Field(
        15.0, description="camera lease lifetime; a dead worker's cameras move after this long"
    )
    redis_url: str = Field("", description="for camera leases; empty = leases in the database")
    memory_ttl_days: Annotated[float, Field(gt=0, le=3650)] = Field(
        30.0,
        description="false-alarm memory: a rejected object is remembered (its candidates suppressed) this long",
    )
    memory_refresh_s: Annotated[float, Field(ge=1, le=3600)] = Field(
        30.0,
        description="how often a stream worker reloads its cameras' false-alarm memory and saves its counts",
    )

    # audit chain (issue 15)
    audit_key: str = Field(
        _DEV_SECRET,
        description="HMAC-SHA256 key of the audit chain's row MACs and signed checkpoints; kept out of the "
        "database, so rewriting history there cannot be hidden (production: 32+ bytes)",
    )
    audit_checkpoint_interval_s: Annotated[float, Field(ge=5, le=86400)] = Field(
        300.0,
        description="how often the relay (and urbaneye run) writes a signed checkpoint of the audit chain's "
        "head to the object store",
    )

    # API security (issue 16)
    max_body_bytes: Annotated[int, Field(ge=1024, le=1 << 30)] = Field(
        1 << 20, description="largest request body the API reads, bytes (413 beyond; some routes allow less)"
    )
    login_max_failures_per_address: Annotated[int, Field(ge=1, le=10000)] = Field(
        20,
        description="failed logins from one client address (any usernames) before each further try waits",
    )
    trusted_proxies: str = Field(
        "",
        description="comma-separated addresses/CIDRs of reverse proxies whose X-Forwarded-For names the "
        "client; empty = the peer address is the client",
    )
    camera_schemes: str = Field(
        "rtsp,rtsps,rtmp,rtmps,http,https",
        description="URL schemes a camera source added through the API may use (never file: or a path)",
    )
    camera_networks: str = Field(
        "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7",
        description="production: CIDRs a camera source added through the API must resolve into",
    )

    @model_validator(mode="after")
    def verify_secrets(self) -> Settings:
        """Production refuses short or well-known secrets and default S3 credentials, one line each."""
        if self.environment == "production":
            problems = production_secret_problems(self)
            if problems:
                raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def verify_networks(self) -> Settings:
        self.trusted_proxy_networks()  # raise with the bad item named
        self.camera_network_list()
        return self

    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """``trusted_proxies`` parsed: the peers whose ``X-Forwarded-For`` is believed."""
        return _networks(self.trusted_proxies, "URBANEYE_TRUSTED_PROXIES")

    def camera_network_list(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """``camera_networks`` parsed: where camera sources may point in production."""
        return _networks(self.camera_networks, "URBANEYE_CAMERA_NETWORKS")

    def camera_scheme_set(self) -> frozenset[str]:
        return frozenset(s.strip().lower() for s in self.camera_schemes.split(",") if s.strip())

    @model_validator(mode="after")
    def verify_push_policy(self) -> Settings:
        self.push_policies()  # raises with the bad item named
        return self

    def push_policies(self) -> dict[str, str]:
        """``push_policy`` parsed: violation kind -> ``after_review`` | ``immediate``."""
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


def production_secret_problems(settings: Settings) -> list[str]:
    """One line per secret production would refuse, naming the variable and how to make a good one."""
    problems = []
    for name in ("secret_key", "hotline_secret", "audit_key"):
        value: str = getattr(settings, name)
        var = f"URBANEYE_{name.upper()}"
        if value.lower() in KNOWN_DEFAULT_SECRETS or value.strip() == "":
            problems.append(f"{var} is a well-known default or empty; {MAKE_SECRET_HINT}")
        elif len(value.encode()) < MIN_SECRET_BYTES:
            problems.append(f"{var} is shorter than {MIN_SECRET_BYTES} bytes; {MAKE_SECRET_HINT}")
    for name in ("s3_access_key", "s3_secret_key"):
        value = getattr(settings, name)
        if value.strip().lower() in DEFAULT_S3_CREDENTIALS:
            problems.append(
                f"URBANEYE_{name.upper()} is the default {value!r}; create an S3 user for UrbanEye "
                f"(e.g. mc admin user add) and set its keys; {MAKE_SECRET_HINT}"
            )
    return problems


def _networks(text: str, var: str) -> tuple[IPv4Network | IPv6Network, ...]:
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        try:
            out.append(ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"{var} item {item!r} is not an address or CIDR; write e.g. 10.0.0.0/8"
            ) from None
    return tuple(out)


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_markdown() -> str:
    """The settings table of docs/settings.md, generated from the fields above (one source of truth)."""
    rows = [
        "| Variable | Type | Default | Description |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, Path):
            try:
                default = "<repo>/" + str(default.relative_to(REPO_ROOT))
            except ValueError:
                default = str(default)
        default_txt = f"`{default}`" if default not in ("", None) else "(empty)"
        choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else ()
        typ = "one of " + ", ".join(choices) if choices else getattr(field.annotation, "__name__", "")
        bounds = [
            f"{k} {getattr(m, k)}" for m in field.metadata for k in ("ge", "gt", "le", "lt") if hasattr(m, k)
        ]
        if bounds:
            typ += f" ({', '.join(bounds)})"
        desc = (field.description or "").replace("|", "\\|")
        rows.append(f"| `URBANEYE_{name.upper()}` | {typ} | {default_txt} | {desc} |")
    return "\n".join(rows) + "\n"


SETTINGS_DOC_BEGIN = "<!-- settings:begin (generated: python -m urbaneye.settings docs/settings.md) -->"
SETTINGS_DOC_END = "<!-- settings:end -->"


def write_settings_doc(path: Path) -> bool:
    """Replace the generated table in ``path``; returns True if the file changed."""
    text = path.read_text(encoding="utf-8")
    head, sep, rest = text.partition(SETTINGS_DOC_BEGIN)
    _, sep2, tail = rest.partition(SETTINGS_DOC_END)
    if not sep or not sep2:
        raise ValueError(
            f"{path} lacks the settings markers; add {SETTINGS_DOC_BEGIN} and {SETTINGS_DOC_END}"
        )
    new = f"{head}{SETTINGS_DOC_BEGIN}\n{settings_markdown()}{SETTINGS_DOC_END}{tail}"
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


if __name__ == "__main__":
    changed = write_settings_doc(
        Path(sys.argv[1] if len(sys.argv) > 1 else REPO_ROOT / "docs" / "settings.md")
    )
    print("updated" if changed else "up to date")
