from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import UtcDatetime
from urbaneye.db.models import Role


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: UtcDatetime
    kind: str = Field(description="access | service")


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str
    display_name: str
    role: Role
    is_active: bool
    created_at: UtcDatetime


class UsersPublic(BaseModel):
    data: list[UserPublic]
    count: int


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    password: str = Field(min_length=8, max_length=256)
    role: Role
    display_name: str = Field("", max_length=120)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    display_name: str | None = Field(None, max_length=120)
    is_active: bool | None = None
    password: str | None = Field(None, min_length=8, max_length=256)


class ServiceTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_s: int = Field(30 * 86400, ge=60, le=366 * 86400)


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=8, max_length=256)
