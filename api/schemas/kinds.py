"""Violation kinds as the UI lists them: built-in, configured in the cameras file, or found on cases."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class KindSource(StrEnum):
    BUILTIN = "builtin"  # one of the four kinds UrbanEye ships
    CONFIGURED = "configured"  # the cameras file's violations: section
    CASES = "cases"  # only known from cases (its kind was configured once, or elsewhere)


class KindPublic(BaseModel):
    id: str = Field(description="the event's and the case's kind, e.g. street_vending, goods_display")
    name_zh: str = Field(description="Chinese name, e.g. 出店陈列")
    gbt_code: str = Field(description="GB/T 30428.2 event code")
    gbt_name: str = Field(description="the code's name")
    classes: list[str] = Field(
        description="object kinds that make the violation (the first is a classified box's default label); "
        "empty when the kind is known only from cases"
    )
    source: KindSource
    case_count: int = Field(0, description="cases of this kind (any status)")


class KindsPublic(BaseModel):
    data: list[KindPublic] = Field(description="built-in kinds first, then configured, then others by id")
    count: int
