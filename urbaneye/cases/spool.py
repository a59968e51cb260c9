"""Durable on-disk spool of violation events and their evidence frames.

Layout under the spool root (shared by stream workers, Celery workers and the relay)::

    tmp/                      items being written (never read)
    items/{item_id}/item.json {"item_id", "event": ViolationEvent.to_json(), "context": CaseContext.to_json(),
                              "frames": [{"seq", "variant", "frame_ts"}], "created_at"}, then one file
                              per frame: {seq}-{variant}.jpg
    sent/{item_id}            marker; its mtime is when a task for the item was last sent (or claimed
                              for sending: ``write(..., claim_send=True)`` creates it before the item
                              is visible, so the relay never sends a fresh item a second time)
    done/{item_id}            marker; the case exists and all evidence is uploaded

An item appears in ``items/`` only complete: files are fsynced in ``tmp/`` and the directory is renamed
into place atomically. An item leaves ``items/`` only after its ``done`` marker is durable.

The JSON layout is the one every earlier version wrote: items spooled before an upgrade load unchanged (a
key an older version did not write takes its field's default, see ``CaseContext.from_json`` and
``ViolationEvent.from_json``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from urbaneye.storage import fsync_dir
from vision.config import LocationConfig
from vision.types import ViolationEvent

_ITEM_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,160}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


class SpoolItemNotFound(LookupError):
    pass


#: Time zone of a case's local day (evidence keys) when its camera names none.
DEFAULT_TIMEZONE = "Asia/Shanghai"


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)  # a naive event time is UTC


@dataclass(frozen=True)
class CaseContext:
    """What a case needs to know about its event's camera, beyond the event itself.

    Built by the stream worker (``streams.events.EvidenceKeeper.context``) from the camera's config and
    spooled beside the event.
    """

    camera_id: str
    camera_name: str = ""
    model_version: str = ""
    frame_wh: tuple[int, int] | None = None  # (w, h) px of the frames the event's boxes are in
    zone_name: str = ""
    place_key: str = ""  # where repeat offences are counted, if the event carries none
    location: LocationConfig = field(default_factory=LocationConfig)
    timezone: str = DEFAULT_TIMEZONE  # IANA name: the local day in evidence keys
    event_time: dt.datetime | None = None  # wall clock of the event (tz-aware); None: when it was spooled
    bike_operator_routing: bool = False
    #: which stream the evidence frames came from: "" (the camera's one stream), "main" (the camera's
    #: evidence_source), "sub_fallback" (the main stream failed; the detection stream's frames were used)
    evidence_stream: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "camera_id": self.camera_id,
            "camera_name": self.camera_name,
            "model_version": self.model_version,
            "frame_wh": [int(v) for v in self.frame_wh] if self.frame_wh else None,
            "zone_name": self.zone_name,
            "place_key": self.place_key,
            "location": self.location.model_dump(mode="json"),
            "timezone": self.timezone,
            "event_time": self.event_time.isoformat() if self.event_time else None,
            "bike_operator_routing": self.bike_operator_routing,
            "evidence_stream": self.evidence_stream,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaseContext:
        """The inverse of ``to_json``. Keys an older version did not write take their field's default
        (it wrote only the keys it knew; ``null``/``""`` meant unknown); keys this version does not know
        are ignored.

        Example:
            >>> CaseContext.from_json({"camera_id": "cam-1", "frame_wh": [1280, 720]}).frame_wh
            (1280, 720)
        """
        known = {f.name for f in fields(cls)}
        given = {k: v for k, v in data.items() if k in known and v is not None}
        if given.get("frame_wh"):
            w, h = given["frame_wh"]
            given["frame_wh"] = (int(w), int(h))
        else:
            given.pop("frame_wh", None)
        if "location" in given:
            given["location"] = LocationConfig.model_validate(given["location"])
        if given.get("event_time"):
            given["event_time"] = _aware(dt.datetime.fromisoformat(str(given["event_time"])))
        else:
            given.pop("event_time", None)
        return cls(**given)


#: Evidence seqs from here on are the frame strip (downscaled frames across the dwell, variant
#: "annotated" only): shown to reviewers, never counted as the legal evidence moments (seq 1 = first
#: sighting, 2 = dwell crossing, 3.. = updates, all below this).
STRIP_SEQ_BASE = 1001


def is_strip_seq(seq: int) -> bool:
    """Whether evidence ``seq`` is a frame-strip frame (not a legal evidence moment).

    Example:
        >>> is_strip_seq(2), is_strip_seq(STRIP_SEQ_BASE + 3)
        (False, True)
    """
    return int(seq) >= STRIP_SEQ_BASE


@dataclass(frozen=True)
class EvidenceFrame:
    """One evidence image on its way into the spool."""

    seq: int  # 1 = first sighting, 2 = dwell crossing, 3.. = updates, STRIP_SEQ_BASE.. = frame strip
    variant: str  # "clean" | "annotated" | "crop"
    jpeg: bytes
    frame_ts: dt.datetime | None  # wall-clock time of the frame

    @property
    def strip(self) -> bool:
        """A frame-strip frame (see ``STRIP_SEQ_BASE``), not a legal evidence moment."""
        return is_strip_seq(self.seq)


@dataclass(frozen=True)
class SpooledFrame:
    """One evidence image in the spool: ``{seq}-{variant}.jpg`` in its item's folder."""

    seq: int
    variant: str
    frame_ts: dt.datetime | None
    path: Path

    def read(self) -> bytes:
        return self.path.read_bytes()

    @staticmethod
    def file_name(seq: int, variant: str) -> str:
        return f"{int(seq)}-{variant}.jpg"

    @staticmethod
    def to_json(frame: EvidenceFrame) -> dict[str, Any]:
        """The metadata ``item.json`` keeps of a frame (its bytes are the file beside it)."""
        return {
            "seq": int(frame.seq),
            "variant": frame.variant,
            "frame_ts": frame.frame_ts.isoformat() if frame.frame_ts else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], item_dir: Path) -> SpooledFrame:
        frame_ts = data["frame_ts"]
        return cls(
            seq=int(data["seq"]),
            variant=str(data["variant"]),
            frame_ts=dt.datetime.fromisoformat(frame_ts) if frame_ts else None,
            path=item_dir / cls.file_name(data["seq"], data["variant"]),
        )


@dataclass(frozen=True)
class SpoolItem:
    item_id: str
    event: ViolationEvent
    context: CaseContext
    frames: list[SpooledFrame]
    created_at: dt.datetime


def make_item_id(violation_id: str, event: str, ts_s: float) -> str:
    """Deterministic id: the same event submitted twice lands on the same item."""
    digest = hashlib.sha1(f"{violation_id}\0{event}\0{ts_s:.3f}".encode()).hexdigest()[:10]
    return f"{_UNSAFE.sub('_', violation_id)[:100]}.{event}.{int(round(ts_s * 1000))}.{digest}"


def check_item_id(item_id: str) -> str:
    if not _ITEM_ID_RE.match(item_id or "") or item_id in (".", ".."):
        raise ValueError(f"spool item id {item_id!r} is not a valid id (letters, digits, _ . - only)")
    return item_id


def _write_fsync(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.items_dir = self.root / "items"
        self.tmp_dir = self.root / "tmp"
        self.sent_dir = self.root / "sent"
        self.done_dir = self.root / "done"
        for d in (self.items_dir, self.tmp_dir, self.sent_dir, self.done_dir):
            d.mkdir(parents=True, exist_ok=True)

    def write(
        self,
        item_id: str,
        event: ViolationEvent,
        context: CaseContext,
        frames: list[EvidenceFrame],
        *,
        claim_send: bool = False,
    ) -> bool:
        """Write an item durably. Returns False if it already exists (or is already done).

        ``claim_send``: the caller sends the task itself right after; the ``sent`` marker is written
        before the item appears, so a relay round in between does not send it too (``release_send``
        hands it to the relay if the caller's send fails).
        """
        check_item_id(item_id)
        final = self.items_dir / item_id
        if final.exists() or self.is_done(item_id):
            return False
        tmp = self.tmp_dir / f"{item_id}.{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            for frame in frames:
                _write_fsync(tmp / SpooledFrame.file_name(frame.seq, frame.variant), frame.jpeg)
            doc = {
                "item_id": item_id,
                "event": event.to_json(),
                "context": context.to_json(),
                "frames": [SpooledFrame.to_json(f) for f in frames],
                "created_at": dt.datetime.now(dt.UTC).isoformat(),
            }
            _write_fsync(tmp / "item.json", json.dumps(doc, ensure_ascii=False).encode())
            fsync_dir(tmp)
            if claim_send:
                self.mark_sent(item_id)
            try:
                os.rename(tmp, final)
            except OSError:
                if final.exists():  # a concurrent submit of the same event won (and sends it)
                    shutil.rmtree(tmp, ignore_errors=True)
                    return False
                raise
            fsync_dir(self.items_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return True

    def load(self, item_id: str) -> SpoolItem:
        check_item_id(item_id)
        path = self.items_dir / item_id
        try:
            doc = json.loads((path / "item.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SpoolItemNotFound(
                f"spool item {item_id} not in {self.items_dir}"
                + (
                    " (already done)"
                    if self.is_done(item_id)
                    else "; is URBANEYE_DATA_DIR shared with the workers?"
                )
            ) from None
        return SpoolItem(
            item_id=item_id,
            event=ViolationEvent.from_json(doc["event"]),
            context=CaseContext.from_json(doc["context"]),
            frames=[SpooledFrame.from_json(f, path) for f in doc["frames"]],
            created_at=dt.datetime.fromisoformat(doc["created_at"]),
        )

    def mark_sent(self, item_id: str) -> None:
        marker = self.sent_dir / check_item_id(item_id)
        marker.touch()
        os.utime(marker)

    def release_send(self, item_id: str) -> None:
        """The claimed send failed: the relay sends the item in its next round."""
        (self.sent_dir / check_item_id(item_id)).unlink(missing_ok=True)

    def exists(self, item_id: str) -> bool:
        return (self.items_dir / check_item_id(item_id) / "item.json").is_file()

    @contextlib.contextmanager
    def upload_lock(self, item_id: str) -> Iterator[bool]:
        """Yield True while this process alone uploads the item's evidence, False if another does.

        An advisory ``flock`` on the item (every process that can read a spool runs on its machine): a
        re-sent task never uploads the same object twice at once (object lock would keep both versions).
        The kernel drops the lock when the holder dies.
        """
        try:
            fd = os.open(self.items_dir / check_item_id(item_id) / "item.json", os.O_RDONLY)
        except FileNotFoundError:
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the last descriptor releases the lock

    def mark_done(self, item_id: str) -> None:
        check_item_id(item_id)
        _write_fsync(self.done_dir / item_id, b"")
        fsync_dir(self.done_dir)
        shutil.rmtree(self.items_dir / item_id, ignore_errors=True)
        (self.sent_dir / item_id).unlink(missing_ok=True)

    def is_done(self, item_id: str) -> bool:
        return (self.done_dir / item_id).exists()

    def pending_ids(self) -> list[str]:
        """Items not yet done, oldest first."""
        entries = []
        for p in self.items_dir.iterdir():
            try:
                entries.append((p.stat().st_mtime, p.name))
            except FileNotFoundError:
                continue  # finished while listing
        return [name for _, name in sorted(entries)]

    def due_for_send(self, resend_after_s: float, now: float | None = None) -> list[str]:
        """Items never sent, or sent more than ``resend_after_s`` ago and still not done."""
        now = time.time() if now is None else now
        due = []
        for item_id in self.pending_ids():
            if self.is_done(item_id):  # a crash between the done marker and the clean-up: finish it
                self.mark_done(item_id)
                continue
            try:
                sent_at = (self.sent_dir / item_id).stat().st_mtime
            except FileNotFoundError:
                due.append(item_id)
                continue
            if now - sent_at >= resend_after_s:
                due.append(item_id)
        return due

    def prune_done(self, older_than_s: float = 7 * 86400) -> int:
        """Forget done markers older than ``older_than_s`` (the case row is the record by then)."""
        cutoff = time.time() - older_than_s
        removed = 0
        for p in self.done_dir.iterdir():
            if p.stat().st_mtime < cutoff:
                p.unlink(missing_ok=True)
                removed += 1
        for p in self.tmp_dir.iterdir():  # leftovers of a crash mid-write: never became items
            if p.stat().st_mtime < cutoff:
                shutil.rmtree(p, ignore_errors=True)
        return removed
