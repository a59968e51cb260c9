"""streams.sources against real files and URLs: masking, classification, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams.sources import SourceError, SourceKind, VideoSource, credentialed_url, mask_url, source_kind
from tests.streams.helpers import free_port, write_clip
from vision.config import SourceConfig


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/ch1", "rtsp://***@10.0.0.5:554/ch1"),
        (
            "open rtmp://u:p@h/live failed; retry rtsp://x:y@h2/a",
            "open rtmp://***@h/live failed; retry rtsp://***@h2/a",
        ),
        (
            "http://cam.local/video?user=a&password=s3cret&fps=5",
            "http://cam.local/video?user=***&password=***&fps=5",
        ),
        ("https://h/x.m3u8?token=abc", "https://h/x.m3u8?token=***"),
        ("rtsp://10.0.0.5/ch1", "rtsp://10.0.0.5/ch1"),
        ("/data/clips/cam-1.mp4", "/data/clips/cam-1.mp4"),
    ],
)
def test_mask_url_hides_credentials(text: str, expected: str) -> None:
    assert mask_url(text) == expected


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("rtsp://h/a", SourceKind.RTSP),
        ("RTSP://h/a", SourceKind.RTSP),
        ("rtmp://h/live", SourceKind.RTMP),
        ("http://h/video.mjpg", SourceKind.HTTP),
        ("https://h/index.m3u8", SourceKind.HTTP),
        ("0", SourceKind.DEVICE),
        ("/dev/video2", SourceKind.DEVICE),
        ("clips/a.mp4", SourceKind.FILE),
    ],
)
def test_source_kind(url: str, kind: SourceKind) -> None:
    assert source_kind(url) is kind


def test_credentials_are_inserted_quoted_and_replace_url_ones() -> None:
    src = SourceConfig(url="rtsp://old:creds@10.0.0.5/ch1", username="ad min", password="p@ss:w/rd")
    assert credentialed_url(src) == "rtsp://ad%20min:p%40ss%3Aw%2Frd@10.0.0.5/ch1"
    assert credentialed_url(SourceConfig(url="clip.mp4", username="u", password="p")) == "clip.mp4"


def test_file_frames_and_video_time(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", seconds=2, fps=10)
    src = VideoSource(SourceConfig(url=str(clip)))
    info = src.open()
    assert (info.kind, info.width_px, info.height_px, info.fps, info.frame_count) == (
        SourceKind.FILE,
        320,
        240,
        10,
        20,
    )
    times = []
    while src.grab():
        times.append(round(src.position_s(), 3))
        if len(times) == 1:
            assert src.retrieve().shape == (240, 320, 3)
    assert times == [round(i / 10, 3) for i in range(20)]
    assert not src.grab()  # end of file stays the end
    src.close()


def test_missing_file_is_a_permanent_error_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"does not exist; fix source.url") as err:
        VideoSource(SourceConfig(url=str(tmp_path / "nope.mp4"))).open()
    assert err.value.permanent


@pytest.mark.parametrize("content", ["not-video", "truncated"])
def test_unreadable_files_give_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.mp4"
    if content == "not-video":
        path.write_text("this is a text file, not a video\n" * 20)
    else:
        data = write_clip(tmp_path / "ok.mp4", seconds=2).read_bytes()
        path.write_bytes(data[: len(data) // 3])  # header (moov) lost with the tail
    with pytest.raises(SourceError, match=r"not a video, or corrupt/truncated") as err:
        VideoSource(SourceConfig(url=str(path))).open()
    assert err.value.permanent


def test_unreachable_stream_error_and_stderr_never_show_credentials(tmp_path: Path) -> None:
    # A subprocess, so OpenCV/FFmpeg writing straight to fd 2 is captured too.
    port = free_port()
    code = (
        "from streams.sources import VideoSource, SourceError\n"
        "from vision.config import SourceConfig\n"
        f"src = VideoSource(SourceConfig(url='rtsp://127.0.0.1:{port}/ch1', username='admin', password='hunter2'),"
        " open_timeout_s=2)\n"
        "try:\n    src.open()\nexcept SourceError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=Path.cwd()
    )
    text = out.stdout + out.stderr
    assert "ERR could not open rtsp stream rtsp://127.0.0.1" in out.stdout
    assert "hunter2" not in text and "admin" not in text


def test_hls_over_http(tmp_path: Path) -> None:
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    clip = write_clip(tmp_path / "c.mp4", seconds=3, fps=10)
    hls = tmp_path / "hls"
    hls.mkdir()
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(clip), "-c:v", "libx264", "-preset", "ultrafast", "-g", "10",
         "-f", "hls", "-hls_time", "1", "-hls_list_size", "0", str(hls / "index.m3u8")],
        check=True,
    )  # fmt: skip

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(hls)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src = VideoSource(SourceConfig(url=f"http://127.0.0.1:{server.server_address[1]}/index.m3u8"))
        info = src.open()
        assert (info.kind, info.width_px, info.height_px) == (SourceKind.HTTP, 320, 240)
        frames = 0
        while src.grab():
            frames += 1
        assert frames == 30
        src.close()
    finally:
        server.shutdown()
        server.server_close()
