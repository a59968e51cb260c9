"""A corrupt video file that decodes one frame and fails: the capture backs off, the camera shows degraded
with the reason, and what it writes to stderr (FFmpeg's errors and our log) stays bounded.

Before, every short read reset the backoff, so such a file reopened flat out: ~2000 opens and 13 MB of
FFmpeg stderr in 40 s, the camera "online" at 52 fps. A subprocess, so FFmpeg writing to fd 2 is counted.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.streams.helpers import write_clip

RUN_S = 7.0


def one_frame_file(path: Path, frames: int = 100) -> Path:
    """An MPEG-4 clip whose samples after the first are overwritten with noise (header and index intact):
    FFmpeg opens it, decodes frame 1, then fails on every later frame."""
    rng = np.random.default_rng(0)
    write_clip(path, seconds=frames / 25, fps=25, paint=lambda f, t: f.__setitem__(..., rng.integers(0, 255, f.shape, np.uint8)))  # fmt: skip
    data = bytearray(path.read_bytes())
    stsz = data.find(b"stsz")  # sample sizes: version/flags, default size, count, then one per sample
    count = struct.unpack(">I", data[stsz + 12 : stsz + 16])[0]
    sizes = struct.unpack(f">{count}I", data[stsz + 16 : stsz + 16 + 4 * count])
    start = data.find(b"mdat") + 4 + sizes[0]  # the file's one mdat starts right after the header box
    data[start : start + sum(sizes[1:])] = rng.integers(0, 255, sum(sizes[1:]), np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


CHILD = """
import json, logging, sys, time
from streams.capture import CaptureThread, FrameBuffer
from streams.status import CameraHealth
from vision.config import CameraConfig
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
camera = CameraConfig.model_validate({"id": "cam-x", "source": {"url": sys.argv[1], "loop": True}})
health = CameraHealth(camera.id, camera.detect_fps)
buffer = FrameBuffer()
cap = CaptureThread(camera, buffer, health, realtime=True)
cap.start()
time.sleep(float(sys.argv[2]))  # the observation window: counting what happens in it, not waiting for a state
snap = health.snapshot()
cap.stop()
cap.join(10)
print(json.dumps({"opens": cap.opens, "state": str(snap.state), "error": snap.error, "frames_in": snap.frames_in}))
"""


def test_a_one_frame_corrupt_file_backs_off_shows_degraded_and_bounds_stderr(tmp_path: Path) -> None:
    bad = one_frame_file(tmp_path / "one-frame.mp4")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(bad), str(RUN_S)],
        capture_output=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    result = json.loads(out.stdout)
    # backoff 1, 2, 4 s (+-20 %) after each short read: opens at ~0, 1, 3 and maybe 5.6-8.4 s
    assert 2 <= result["opens"] <= 4, result
    assert result["frames_in"] == result["opens"]  # one frame per open, nothing more
    assert result["state"] == "degraded", result
    assert (
        "decodes only 1 of 100 frame(s) before failing (corrupt or truncated); re-encode it"
        in result["error"]
    )
    # FFmpeg's errors and our warnings: one burst per open, so a few KB instead of megabytes
    assert len(out.stderr) < 16_000, out.stderr.decode(errors="replace")[-3000:]
