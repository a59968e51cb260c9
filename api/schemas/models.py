from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import UtcDatetime


class ModelVersionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: str
    parent: str | None
    status: str = Field(description="active | candidate | shadow | retired")
    camera_group: str
    dataset_version: str
    onnx_uri: str
    sha256: str
    classes: list[Any]
    metrics: dict[str, Any]
    gate: dict[str, Any]
    training_time_s: float
    hardware: str
    created_at: UtcDatetime
    promoted_at: UtcDatetime | None


class ModelVersionsPublic(BaseModel):
    data: list[ModelVersionPublic]
    count: int


class ActiveModelPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    camera_group: str
    version: str
    shadow_version: str | None
    shadow_cameras: list[str]
    updated_at: UtcDatetime


class ActiveModelsPublic(BaseModel):
    data: list[ActiveModelPublic]
    count: int


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    camera_group: str | None = Field(None, max_length=64, description="default: the version's own group")
    force: bool = Field(
        False,
        description="promote a version whose promotion gate failed (admins only; written to the audit log)",
    )


class VerdictsPublic(BaseModel):
    """Reviewer verdicts on a set of a model's cases; precision = confirmed / (confirmed + rejected)."""

    cases: int
    pending: int
    confirmed: int
    rejected: int
    reasons: dict[str, int] = Field(description="rejection reason -> count")
    precision: float | None = Field(description="None while no case is judged")


class CameraVerdictsPublic(BaseModel):
    total: VerdictsPublic
    kinds: dict[str, VerdictsPublic]


class ModelReportPublic(BaseModel):
    """How reviewers judged a model's cases: the model's real-world precision, per kind and camera."""

    version: str
    sha256: str
    counted_as: list[str] = Field(description="the cases' model_version strings counted for this model")
    total: VerdictsPublic
    kinds: dict[str, VerdictsPublic]
    cameras: dict[str, CameraVerdictsPublic]
