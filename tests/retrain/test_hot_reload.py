"""ModelWatcher: a running frame loop picks up a promoted model without a restart or a dropped frame."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnx

from urbaneye import registry
from urbaneye.hot_reload import ModelWatcher
from vision.digest import sha256_file


def variant(src: Path, dest: Path, version: str) -> Path:
    """Same network, different metadata: a distinct file (and sha256) like a retrained model."""
    proto = onnx.load(str(src))
    for prop in proto.metadata_props:
        if prop.key == "model_version":
            prop.value = version
    onnx.save(proto, str(dest))
    return dest


def test_frame_loop_swaps_between_frames(db, tiny_parent, tmp_path):
    _, parent_onnx = tiny_parent
    with db() as s:
        registry.register(s, onnx_path=parent_onnx, version="v1")
        registry.promote(s, "v1")
        registry.register(
            s, onnx_path=variant(parent_onnx, tmp_path / "v2.onnx", "v2"), version="v2", parent="v1"
        )
        s.commit()

    watcher = ModelWatcher("default", poll_s=0.05, session_factory=db).start()
    seen: list[str] = []
    stop = threading.Event()
    frame = np.zeros((96, 160, 3), np.uint8)

    def loop() -> None:  # the stream worker's shape: one snapshot per frame
        while not stop.is_set():
            detector, version = watcher.current()
            detector.detect(frame)
            seen.append(version)

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        with db() as s:
            registry.promote(s, "v2")
            s.commit()
        assert watcher.wait_for_version("v2", timeout_s=30)
        n_at_swap = len(seen)
        while len(seen) < n_at_swap + 3:  # a few more frames on the new model
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join()
        watcher.stop()
    first_v2 = seen.index("v2")
    assert set(seen[:first_v2]) == {"v1"} and set(seen[first_v2:]) == {"v2"}
    assert watcher.status()["reloads"] == 1
    assert watcher.current()[0].sha256 == sha256_file(tmp_path / "v2.onnx")


def test_bad_artefact_keeps_old_model(db, tiny_parent, tmp_path, request):
    _, parent_onnx = tiny_parent
    with db() as s:
        registry.register(s, onnx_path=parent_onnx, version="v1")
        registry.promote(s, "v1")
        bad = registry.register(s, onnx_path=variant(parent_onnx, tmp_path / "v2.onnx", "v2"), version="v2")
        s.commit()
    Path(bad.onnx_uri).write_bytes(b"tampered")  # the registry copy no longer matches its sha256
    watcher = ModelWatcher("default", poll_s=60, session_factory=db).start()
    request.addfinalizer(watcher.stop)  # its poll thread must not outlive the test (and its database)
    with db() as s:
        registry.promote(s, "v2")
        s.commit()
    assert watcher.poll_once() is False
    assert watcher.current()[1] == "v1"
    assert "sha256" in watcher.status()["last_error"]


def test_shadow_only_on_chosen_cameras_and_fallback(db, tiny_parent, tmp_path, request):
    _, parent_onnx = tiny_parent
    # no active model yet: the fallback file serves, under its detector version
    watcher = ModelWatcher("default", poll_s=60, session_factory=db, fallback_path=parent_onnx).start()
    request.addfinalizer(watcher.stop)
    assert watcher.current()[1].startswith("tiny-parent-")
    with db() as s:
        registry.register(s, onnx_path=parent_onnx, version="v1")
        registry.promote(s, "v1")
        registry.register(s, onnx_path=variant(parent_onnx, tmp_path / "s.onnx", "s"), version="s")
        registry.set_shadow(s, "default", "s", ["cam-2"])
        s.commit()
    assert watcher.poll_once()
    assert watcher.current()[1] == "v1"
    assert watcher.shadow("cam-1") is None
    assert watcher.shadow("cam-2")[1] == "s"
    with db() as s:
        registry.set_shadow(s, "default", None)
        s.commit()
    watcher.poll_once()
    assert watcher.shadow("cam-2") is None
