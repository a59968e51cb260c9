"""The cameras page in headless Chromium: an invalid camera of the cameras file (set aside by the worker,
known only from its status) is shown with its error next to the running cameras."""

# ruff: noqa: F811 - the browser fixtures are imported from test_browser and used as arguments

from __future__ import annotations

import pytest

from tests.api.test_browser import ARTIFACTS, login, page, seeded, server, wait_js  # noqa: F401 - fixtures
from urbaneye.cameras_repo import INVALID_IN_FILE
from urbaneye.db.models import CameraStatus

pytestmark = pytest.mark.browser


def test_cameras_page_shows_an_invalid_camera_with_its_error(page, seeded, db) -> None:  # noqa: ANN001
    error = f"{INVALID_IN_FILE}: cameras[cam-bad].zones[tie]: polygon self-intersects"
    db.add(CameraStatus(camera_id="cam-bad", worker_id="worker-a", state="offline", error=error))
    db.commit()

    login(page, "demo", "demo-review")
    page.goto(page.base + "/ui/#/cameras")
    card = page.locator(".cam-card.invalid[data-camera='cam-bad']")
    card.wait_for()
    assert "配置无效" in card.inner_text() and "配置文件中此项无效" in card.inner_text()
    assert "配置错误：" in card.inner_text() and "polygon self-intersects" in card.inner_text()
    wait_js(page, "document.querySelectorAll('a.cam-card').length === 1", "the running camera listed too")
    page.screenshot(path=ARTIFACTS / "11-cameras-invalid.png")
