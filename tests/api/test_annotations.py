"""The annotation queue's API (/api/v1/annotations): leases, labels, negatives, skips, list and stats."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.api.conftest import scene_jpeg
from urbaneye.annotations import NewItem, Proposal, add_item, frame_key
from urbaneye.db.annotations import AnnotationItem, SampleReason
from vision.digest import sha256_hex

BASE = "/api/v1/annotations"
T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def add_frames(db, store):  # noqa: ANN001, ANN201
    """Put ``n`` sampled frames of a camera in the store and the queue (oldest first)."""

    def add(
        n: int, camera_id: str = "cam-1", reason: SampleReason = SampleReason.NEAR_THRESHOLD
    ) -> list[str]:
        ids = []
        for i in range(n):
            data = scene_jpeg(f"{camera_id} frame {i}", seed=i)
            sha = sha256_hex(data)
            at = T0 + dt.timedelta(minutes=10 * i)
            key = frame_key(camera_id, at, sha)
            store.put(key, data)
            proposal = Proposal("vending_stall", (192.0, 121.0, 278.0, 189.0), 0.41, "model")
            item = add_item(
                db,
                NewItem(
                    camera_id,
                    at,
                    at.timestamp(),
                    reason,
                    "20-24",
                    "bootstrap-abc",
                    key,
                    sha,
                    480,
                    270,
                    (proposal,),
                ),
            )
            item.created_at = at  # the queue's order is the sampling order
            ids.append(item.id)
        db.commit()
        return ids

    return add


def test_next_leases_one_item_per_reviewer(client, users, add_frames):  # noqa: ANN001
    first, second = add_frames(2)
    got = client.get(f"{BASE}/next", headers=users.headers("reviewer")).json()
    assert got["item"]["id"] == first and got["pending"] == 1
    assert got["item"]["proposals"] == [
        {"label": "vending_stall", "xyxy": [192.0, 121.0, 278.0, 189.0], "score": 0.41, "source": "model"}
    ]
    assert got["item"]["frame_at"] == "2026-01-05T12:00:00Z" and got["item"]["lease_expires_at"].endswith("Z")
    again = client.get(f"{BASE}/next", headers=users.headers("reviewer")).json()
    assert again["item"]["id"] == first  # the reviewer keeps what they hold
    other = client.get(f"{BASE}/next", headers=users.headers("admin")).json()
    assert other["item"]["id"] == second and other["pending"] == 0
    refused = client.post(
        f"{BASE}/{first}/labels", json={"boxes": []}, headers=users.headers("admin")
    )  # someone else's item
    assert refused.status_code == 409 and refused.headers["X-Error-Code"] == "annotation_leased"
    assert "其他审核员" in refused.json()["detail"]
    none_left = client.get(f"{BASE}/next", headers=users.headers("admin")).json()
    assert none_left["item"]["id"] == second  # still theirs; nothing else is free
    released = client.delete(f"{BASE}/lease", headers=users.headers("reviewer"))
    assert released.json() == {"message": "released 1 item(s)"}
    assert client.get(f"{BASE}/next", headers=users.headers("viewer")).status_code == 403


def test_labels_are_stored_clipped_and_final(client, users, add_frames, db):  # noqa: ANN001
    (item_id,) = add_frames(1)
    h = users.headers("reviewer")
    client.get(f"{BASE}/next", headers=h)
    boxes = [
        {"label": "vending_stall", "xyxy": [190, 120, 280, 190]},
        {"label": "person", "xyxy": [470, 100, 520, 300]},  # runs off the 480x270 frame: clipped
    ]
    done = client.post(f"{BASE}/{item_id}/labels", json={"boxes": boxes}, headers=h)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "labelled" and body["labelled_by"] == "reviewer1"
    assert body["labels"] == [
        {"label": "vending_stall", "xyxy": [190.0, 120.0, 280.0, 190.0]},
        {"label": "person", "xyxy": [470.0, 100.0, 480.0, 270.0]},
    ]
    row = db.get(AnnotationItem, item_id, populate_existing=True)
    assert row.status == "labelled" and row.leased_by is None and len(row.labels) == 2
    twice = client.post(f"{BASE}/{item_id}/labels", json={"boxes": boxes}, headers=h)
    assert twice.status_code == 409 and twice.headers["X-Error-Code"] == "annotation_done"


@pytest.mark.parametrize(
    ("box", "words"),
    [
        ({"label": "cat", "xyxy": [1, 1, 50, 50]}, "类别"),
        ({"label": "garbage", "xyxy": [600, 300, 700, 400]}, "画面外"),
        ({"label": "garbage", "xyxy": [10, 10, 11, 11]}, "太小"),
    ],
)
def test_bad_boxes_are_refused_and_lose_nothing(client, users, add_frames, db, box, words):  # noqa: ANN001
    (item_id,) = add_frames(1)
    h = users.headers("reviewer")
    good = {"label": "garbage", "xyxy": [10, 10, 60, 60]}
    refused = client.post(f"{BASE}/{item_id}/labels", json={"boxes": [good, box]}, headers=h)
    assert refused.status_code == 422 and refused.headers["X-Error-Code"] == "annotation_bad_box"
    assert "第 2 个框" in refused.json()["detail"] and words in refused.json()["detail"]
    assert db.get(AnnotationItem, item_id, populate_existing=True).status == "pending"
    assert client.post(f"{BASE}/{item_id}/labels", json={"boxes": [good]}, headers=h).status_code == 200


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\x00", "请求体 不是有效的 JSON"),  # the fuzzer's find: FastAPI answered its own list of errors
        (b"{}", "boxes 缺少此项"),
        (b'{"boxes": "garbage"}', "boxes 应为列表"),
        (
            b'{"boxes": [{"label": "garbage", "xyxy": [10, 10, 60, 60]}, {"label": "garbage"}]}',
            "第 2 个框的 xyxy",
        ),
        (b'{"boxes": [{"label": "garbage", "xyxy": [10, 10, 60]}]}', "第 1 个框的 xyxy 项数不对"),
        (b'{"boxes": [], "note": "x"}', "note 不认识此项"),
    ],
)
def test_a_body_that_cannot_be_read_gets_one_chinese_message(client, users, add_frames, db, body, words):  # noqa: ANN001
    (item_id,) = add_frames(1)
    h = {**users.headers("reviewer"), "Content-Type": "application/json"}
    refused = client.post(f"{BASE}/{item_id}/labels", content=body, headers=h)
    assert refused.status_code == 422 and refused.headers["X-Error-Code"] == "annotation_bad_body"
    detail = refused.json()["detail"]
    assert isinstance(detail, str) and detail.startswith("标注提交无效") and words in detail, detail
    assert db.get(AnnotationItem, item_id, populate_existing=True).status == "pending"


def test_negative_skip_list_and_stats(client, users, add_frames):  # noqa: ANN001
    a, b, c = add_frames(3)
    add_frames(1, camera_id="cam-2", reason=SampleReason.PERIODIC)
    h = users.headers("reviewer")
    assert client.post(f"{BASE}/{a}/negative", headers=h).json()["status"] == "negative"
    assert client.post(f"{BASE}/{b}/skip", headers=h).json()["status"] == "skipped"
    empty = client.post(f"{BASE}/{c}/labels", json={"boxes": []}, headers=h).json()
    assert empty["status"] == "negative" and empty["labels"] == []  # no boxes: nothing here
    assert client.post(f"{BASE}/nope/skip", headers=h).status_code == 404

    stats = client.get(f"{BASE}/stats", headers=users.headers("viewer")).json()
    assert stats["by_status"] == {"pending": 1, "labelled": 0, "negative": 2, "skipped": 1}
    assert stats["by_reason"] == {"near_threshold": 3, "unknown_region": 0, "periodic": 1}
    assert stats["by_camera"]["cam-2"]["pending"] == 1 and stats["pending_free"] == 1

    listed = client.get(BASE, params={"status": "negative"}, headers=users.headers("viewer")).json()
    assert listed["count"] == 2 and {i["id"] for i in listed["data"]} == {a, c}
    assert client.get(BASE, params={"status": "bogus"}, headers=h).status_code == 422


def test_frame_link_serves_the_sampled_bytes(client, users, add_frames, db):  # noqa: ANN001
    (item_id,) = add_frames(1)
    item = client.get(f"{BASE}/{item_id}", headers=users.headers("viewer")).json()
    got = client.get(item["image_url"])
    assert got.status_code == 200
    assert sha256_hex(got.content) == db.get(AnnotationItem, item_id).sha256 == item["sha256"]
    assert client.get(f"{BASE}/nope", headers=users.headers("viewer")).status_code == 404


def test_logout_gives_the_reviewers_frames_back_at_once(client, users, add_frames, db):  # noqa: ANN001
    (first,) = add_frames(1)
    assert client.get(f"{BASE}/next", headers=users.headers("reviewer")).json()["item"]["id"] == first
    assert client.get(f"{BASE}/next", headers=users.headers("admin")).json()["item"] is None  # held
    assert client.post("/api/v1/auth/logout", headers=users.headers("reviewer")).status_code == 204
    db.expire_all()
    row = db.get(AnnotationItem, first)
    assert row.leased_by is None and row.lease_expires_at is None and row.status == "pending"
    assert client.get(f"{BASE}/next", headers=users.headers("admin")).json()["item"]["id"] == first
