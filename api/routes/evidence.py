"""Evidence objects of the local (embedded) store, behind the HMAC-signed links ``FsEvidenceStore`` issues.

The signature is the authorisation (like an S3 presigned URL), so ``<img src>`` works without a token;
links expire within 15 minutes. With the S3 backend the links point at MinIO instead and this route is idle.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from api.deps import SettingsDep, StoreDep
from api.schemas.common import errors
from urbaneye.storage import EvidenceNotFound, FsEvidenceStore, verify_fs_presigned

router = APIRouter(prefix="/api/evidence", tags=["evidence"])


@router.get(
    "/object/{key:path}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "the evidence image"}, **errors(403, 404)},
)
def evidence_object(
    key: str,
    settings: SettingsDep,
    store: StoreDep,
    expires: Annotated[int, Query(ge=0, le=2**40)],
    signature: Annotated[str, Query(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")],
) -> Response:
    if not isinstance(store, FsEvidenceStore):
        raise HTTPException(
            404, "evidence is served by the S3 store; use the presigned URL from the case detail"
        )
    if not verify_fs_presigned(key, expires, signature, secret=settings.secret_key):
        raise HTTPException(403, "evidence link invalid or expired; reload the case for a fresh link")
    try:
        data = store.get(key)
    except (EvidenceNotFound, ValueError):
        raise HTTPException(404, f"no evidence object '{key}'") from None
    # private: personal data; the link itself expires, so the browser may keep it only that long
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=600"})
