"""The annotation queue of real frames (issue 14): take the next frame, label it, mark it empty, skip it.

Frames are sampled by the stream workers (``streams.annotation_sampler``); the labels go into
``urbaneye dataset build`` (``datasets.real_frames``). An item is leased to one reviewer at a time, like a
case claim: another reviewer's answer on it is refused with 409 (``X-Error-Code: annotation_leased``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import select

from api.deps import ReaderUser, ReviewerUser, SessionDep, SettingsDep, StoreDep
from api.schemas.annotations import (
    AnnotationItemPublic,
    AnnotationItemsPublic,
    AnnotationStatsOut,
    BoxOut,
    LabelsIn,
    NextItemOut,
    ProposalOut,
)
from api.schemas.common import AUTH_ERRORS, Message, errors
from urbaneye import annotations as queue
from urbaneye.db.annotations import AnnotationItem, AnnotationStatus
from urbaneye.db.models import User, utcnow
from urbaneye.settings import Settings
from urbaneye.storage import EvidenceStore

router = APIRouter(prefix="/annotations", tags=["annotations"], responses=AUTH_ERRORS)

#: Presigned frame links never live longer than this.
MAX_PRESIGN_S = 900
_STATUS = {"not_found": 404, "leased": 409, "done": 409, "bad_box": 422}


def _refused(exc: queue.AnnotationError) -> HTTPException:
    return HTTPException(_STATUS[exc.code], str(exc), headers={"X-Error-Code": f"annotation_{exc.code}"})


#: FastAPI's validation error types, as a reviewer reads them
_BODY_ERRORS_ZH = {
    "json_invalid": "不是有效的 JSON",
    "json_type": "不是 JSON 对象",
    "missing": "缺少此项",
    "extra_forbidden": "不认识此项",
    "model_attributes_type": "应为对象",
    "dict_type": "应为对象",
    "list_type": "应为列表",
    "too_long": "项数太多",
    "too_short": "项数不对",
    "float_type": "应为数字",
    "float_parsing": "应为数字",
    "string_type": "应为文字",
}


def body_error_zh(errors: Sequence[Any]) -> str:
    """FastAPI's list of body errors as one Chinese sentence: the first error, where it is, and the format.

    Example:
        >>> body_error_zh([{"type": "missing", "loc": ("body", "boxes", 1, "xyxy"), "msg": "Field required"}])
        '标注提交无效：第 2 个框的 xyxy 缺少此项。格式：{"boxes": [{"label": 类别, "xyxy": [x1, y1, x2, y2]}]}'
    """
    first = errors[0]
    loc = [str(p) for p in first["loc"] if p != "body"] if first["type"] != "json_invalid" else []
    where = ".".join(loc) or "请求体"
    if len(loc) >= 2 and loc[0] == "boxes" and loc[1].isdigit():
        where = f"第 {int(loc[1]) + 1} 个框" + (f"的 {'.'.join(loc[2:])}" if loc[2:] else "")
    what = _BODY_ERRORS_ZH.get(first["type"], f"不符合要求（{first['msg']}）")
    more = f"（另有 {len(errors) - 1} 处）" if len(errors) > 1 else ""
    return f'标注提交无效：{where} {what}{more}。格式：{{"boxes": [{{"label": 类别, "xyxy": [x1, y1, x2, y2]}}]}}'


class OneMessageRoute(APIRoute):
    """A route whose 422 is documented as one message (``ErrorOut``): a body FastAPI cannot read is refused
    the same way, one Chinese sentence (``X-Error-Code: annotation_bad_body``), not FastAPI's error list."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                headers = {"X-Error-Code": "annotation_bad_body"}
                return JSONResponse({"detail": body_error_zh(exc.errors())}, 422, headers=headers)

        return answer


def _usernames(session: SessionDep, items: list[AnnotationItem]) -> dict[str, str]:
    ids = {i.labelled_by for i in items if i.labelled_by}
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.username).where(User.id.in_(ids))).tuples().all())


def _public(
    item: AnnotationItem,
    session: SessionDep,
    store: EvidenceStore,
    settings: Settings,
    names: dict[str, str] | None = None,
) -> AnnotationItemPublic:
    names = _usernames(session, [item]) if names is None else names
    return AnnotationItemPublic(
        id=item.id,
        camera_id=item.camera_id,
        frame_at=item.frame_at,
        reason=item.reason,
        time_bucket=item.time_bucket,
        model_version=item.model_version,
        width=item.width,
        height=item.height,
        sha256=item.sha256,
        image_url=store.presigned_url(item.key, min(settings.presign_expiry_s, MAX_PRESIGN_S)),
        proposals=[
            ProposalOut(label=p.label, xyxy=list(p.xyxy), score=p.score, source=p.source)
            for p in queue.proposals_of(item)
        ],
        status=item.status,
        labels=[BoxOut(label=b.label, xyxy=list(b.xyxy)) for b in queue.boxes_of(item)],
        labelled_by=names.get(item.labelled_by, item.labelled_by),
        labelled_at=item.labelled_at,
        lease_expires_at=item.lease_expires_at if item.status == AnnotationStatus.PENDING else None,
        created_at=item.created_at,
    )


@router.get("/next", response_model=NextItemOut)
def next_item(
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    user: ReviewerUser,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
) -> NextItemOut:
    """Lease the next frame to label to you (the one you hold first, then the oldest free one)."""
    now = utcnow()
    item = queue.next_item(session, user.id, now, camera_id=camera_id)
    pending = queue.stats(session, now).pending_free
    return NextItemOut(item=_public(item, session, store, settings) if item else None, pending=pending)


@router.get("/stats", response_model=AnnotationStatsOut)
def queue_stats(session: SessionDep, _: ReaderUser) -> AnnotationStatsOut:
    """Counts of the queue: per status, sampling reason and camera; labelled boxes."""
    s = queue.stats(session)
    return AnnotationStatsOut(
        by_status=s.by_status, by_reason=s.by_reason, by_camera=s.by_camera, boxes=s.boxes,
        pending_free=s.pending_free,
    )  # fmt: skip


@router.get("", response_model=AnnotationItemsPublic)
def list_items(
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    _: ReaderUser,
    status: AnnotationStatus | None = None,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AnnotationItemsPublic:
    """Items newest first, filtered by status and camera."""
    rows, total = queue.list_items(session, status, camera_id, limit, offset)
    names = _usernames(session, rows)  # one query for the page, not one per item
    return AnnotationItemsPublic(
        data=[_public(r, session, store, settings, names) for r in rows], count=total
    )


@router.delete("/lease", response_model=Message)
def release_leases(session: SessionDep, user: ReviewerUser) -> Message:
    """Give back the items you hold (leaving the page); they go back to the queue at once."""
    n = queue.release(session, user.id)
    session.commit()
    return Message(message=f"released {n} item(s)")


@router.get("/{item_id}", response_model=AnnotationItemPublic, responses=errors(404))
def get_item(
    item_id: str, session: SessionDep, store: StoreDep, settings: SettingsDep, _: ReaderUser
) -> AnnotationItemPublic:
    item = session.get(AnnotationItem, item_id)
    if item is None:
        raise HTTPException(404, f"没有标注项 {item_id}；用 GET /api/v1/annotations 列出")
    return _public(item, session, store, settings)


def submit_labels(
    item_id: str,
    body: LabelsIn,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    user: ReviewerUser,
) -> AnnotationItemPublic:
    """Your boxes for the frame (an empty list: nothing of the eight classes, as ``/negative``)."""
    boxes = [queue.Box(b.label, (b.xyxy[0], b.xyxy[1], b.xyxy[2], b.xyxy[3])) for b in body.boxes]
    try:
        item = queue.submit_labels(session, item_id, user.id, boxes, utcnow())
    except queue.AnnotationError as exc:
        session.rollback()
        raise _refused(exc) from None
    return _public(item, session, store, settings)


router.add_api_route(
    "/{item_id}/labels",
    submit_labels,
    methods=["POST"],
    response_model=AnnotationItemPublic,
    responses=errors(404, 409, 422),
    route_class_override=OneMessageRoute,
)


@router.post("/{item_id}/negative", response_model=AnnotationItemPublic, responses=errors(404, 409))
def mark_negative(
    item_id: str, session: SessionDep, store: StoreDep, settings: SettingsDep, user: ReviewerUser
) -> AnnotationItemPublic:
    """ "Nothing here": the frame is background for all eight classes (a negative for training)."""
    try:
        item = queue.mark_negative(session, item_id, user.id, utcnow())
    except queue.AnnotationError as exc:
        session.rollback()
        raise _refused(exc) from None
    return _public(item, session, store, settings)


@router.post("/{item_id}/skip", response_model=AnnotationItemPublic, responses=errors(404, 409))
def skip_item(
    item_id: str, session: SessionDep, store: StoreDep, settings: SettingsDep, user: ReviewerUser
) -> AnnotationItemPublic:
    """You cannot tell: the item leaves the queue and is not used for training."""
    try:
        item = queue.skip(session, item_id, user.id, utcnow())
    except queue.AnnotationError as exc:
        session.rollback()
        raise _refused(exc) from None
    return _public(item, session, store, settings)
