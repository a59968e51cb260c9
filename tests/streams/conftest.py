"""Fixtures for stream tests: tiny clips, the oracle detector model, a cameras file factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.streams.helpers import OracleAnchor, build_oracle_model

#: Where the test clips put their white "garbage" rectangle (320x240 frames).
GARBAGE_BOX = (120, 100, 200, 180)
PERSON_BOX = (10, 10, 60, 60)


@pytest.fixture(scope="session")
def oracle_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "oracle.onnx"
    return build_oracle_model(
        path, [OracleAnchor(GARBAGE_BOX, "garbage"), OracleAnchor(PERSON_BOX, "person")]
    )


def camera_dict(camera_id: str, url: str, garbage_dwell_s: float = 15, **extra: Any) -> dict[str, Any]:
    """A camera with one 'monitored' zone around GARBAGE_BOX, 5 detect-fps, video t=0 at 10:00 Beijing."""
    cam = {
        "id": camera_id,
        "name": f"测试 {camera_id}",
        "source": {"url": url},
        "detect_fps": 5,
        "start_time": "2025-06-01T10:00:00+08:00",
        "zones": [
            {
                "id": "z1",
                "name": "人民路",
                "kind": "monitored",
                "polygon": [[0.3, 0.3], [0.7, 0.3], [0.7, 0.85], [0.3, 0.85]],
                "dwell_s": {"exposed_garbage": garbage_dwell_s},
            }
        ],
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(cam.get(key), dict):
            cam[key] = {**cam[key], **value}
        else:
            cam[key] = value
    return cam


@pytest.fixture
def cameras_yaml(tmp_path: Path, oracle_model: Path) -> Callable[..., Path]:
    """Write a cameras file: ``cameras_yaml(camera_dict(...), ..., rules={...})``."""

    def write(
        *cameras: dict[str, Any], rules: dict[str, Any] | None = None, name: str = "cameras.yaml"
    ) -> Path:
        doc = {
            "version": 1,
            "model": {"path": str(oracle_model)},
            "rules": {"grace_s": 3, "reopen_cooldown_s": 0, **(rules or {})},
            "cameras": list(cameras),
        }
        path = tmp_path / name
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        return path

    return write
