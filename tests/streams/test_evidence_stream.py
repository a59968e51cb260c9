"""Detection on a sub-stream, evidence from the main stream, through a real stream worker.

A 640x360 detection file and a 1920x1080 main file show the same scene: a white "garbage" box that stays
in the zone, and a bar along the top that moves with video time (so a frame tells which moment it is).
The worker runs the real capture, oracle ONNX detector, rules, hand-off thread, spool and case service.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

import streams.evidence_stream as evidence_stream
from streams.evidence_stream import (
    EvidenceMoment,
    EvidenceStreams,
    FileMainStream,
    LiveRingStream,
    MainStreamError,
    below_legal_size,
    map_box,
    map_detections,
)
from streams.frame_strip import FRAME_STRIPS
from streams.status import StatusBoard
from streams.worker import DetectorPool, StreamWorker
from tests.streams.conftest import camera_dict
from tests.streams.helpers import MjpegServer, OracleAnchor, build_oracle_model, free_port, write_clip
from tests.waiting import wait_for
from urbaneye.cases.spool import STRIP_SEQ_BASE, CaseContext, EvidenceFrame
from vision.config import SourceConfig, load_cameras
from vision.types import Detections, ViolationEvent

SUB_WH = (640, 360)
MAIN_WH = (1920, 1080)
OBJECT_SUB = (240, 130, 400, 290)  # the garbage box in 640x360 pixels
START = dt.datetime(2025, 6, 1, 2, 0, tzinfo=dt.UTC)  # camera_dict's start_time, 10:00 Beijing
CLIP_S, OBJECT_FROM_S, OBJECT_UNTIL_S = 22.0, 0.5, 20.0
BAR_PX_PER_S = 20.0  # the moving bar's speed in sub-stream pixels


def bar_x(video_s: float) -> float:
    return 10 + BAR_PX_PER_S * video_s


def scene(size: tuple[int, int]) -> Callable[[np.ndarray, float], None]:
    gain = size[0] / SUB_WH[0]

    def paint(frame: np.ndarray, t: float) -> None:
        if OBJECT_FROM_S <= t < OBJECT_UNTIL_S:
            x1, y1, x2, y2 = (round(v * gain) for v in OBJECT_SUB)
            frame[y1:y2, x1:x2] = 255
        x = round(bar_x(t) * gain)
        frame[round(5 * gain) : round(25 * gain), x : x + round(4 * gain)] = (0, 255, 0)

    return paint


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("substream")
    broken = d / "broken.mp4"
    broken.write_text("not a video")
    return {
        "sub": write_clip(d / "sub.mp4", CLIP_S, fps=10, size=SUB_WH, paint=scene(SUB_WH)),
        "main": write_clip(d / "main.mp4", CLIP_S, fps=10, size=MAIN_WH, paint=scene(MAIN_WH)),
        "small_main": write_clip(d / "small.mp4", 3, fps=10, size=(704, 576), paint=scene((704, 576))),
        "broken": broken,
        "model": build_oracle_model(d / "oracle.onnx", [OracleAnchor(OBJECT_SUB, "garbage")], SUB_WH),
    }


@pytest.fixture
def embedded(settings_env: Callable[..., object]) -> object:
    """SQLite, file evidence store, memory:// broker (case tasks run eagerly in the hand-off thread)."""
    settings = settings_env(broker_url="memory://", evidence_backend="fs", database_url="")
    from urbaneye.db.migrate import upgrade

    upgrade(settings.db_url)
    return settings


class RecordingHandoff:
    """The real ``Handoff``; remembers what it was given (the context is what the case is made from)."""

    def __init__(self, spool_dir: Path) -> None:
        from urbaneye.cases.handoff import Handoff

        self.handoff = Handoff(spool_dir)
        self.submitted: list[tuple[ViolationEvent, list[EvidenceFrame], CaseContext]] = []

    def submit(self, event: ViolationEvent, frames: list[EvidenceFrame], context: CaseContext) -> str:
        item_id = self.handoff.submit(event, frames, context)
        self.submitted.append((event, frames, context))
        return item_id

    def opened(self) -> tuple[ViolationEvent, list[EvidenceFrame], CaseContext] | None:
        return next((s for s in self.submitted if s[0].event == "opened"), None)


def write_cameras(tmp_path: Path, model: Path, camera: dict) -> Path:
    doc = {
        "version": 1,
        "model": {"path": str(model)},
        "rules": {"grace_s": 3, "reopen_cooldown_s": 0},
        "cameras": [camera],
    }
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


@contextlib.contextmanager
def running(
    cameras_path: Path, handoff: RecordingHandoff, board: StatusBoard, **kwargs
) -> Iterator[StreamWorker]:  # noqa: ANN003
    cameras_file = load_cameras(cameras_path)
    detectors = DetectorPool(cameras_file, model_path=cameras_file.model.path)
    worker = StreamWorker(
        cameras_file, detectors, handoff, board=board, observers=[FRAME_STRIPS], **kwargs
    ).start()
    try:
        yield worker
    finally:
        worker.stop()


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def green_bar_x(image: np.ndarray, gain: float) -> float:
    """x (sub-stream px) of the moving bar's left edge in a clean frame."""
    row = image[round(15 * gain)]
    green = np.flatnonzero((row[:, 1] > 180) & (row[:, 0] < 80) & (row[:, 2] < 80))
    assert len(green), "no bar in the frame"
    return float(green[0]) / gain


def assert_moment(image: np.ndarray, frame_ts: dt.datetime, gain: float) -> None:
    """The frame shows the moment ``frame_ts`` says (bar position within ~2 frames' movement)."""
    video_s = (frame_ts - START).total_seconds()
    assert abs(green_bar_x(image, gain) - bar_x(video_s)) <= 2 * BAR_PX_PER_S * 0.1 + 1


def test_substream_camera_takes_its_evidence_from_the_main_stream(
    embedded: object, tmp_path: Path, clips: dict[str, Path]
) -> None:
    camera = camera_dict("cam-main", str(clips["sub"]), garbage_dwell_s=12)
    camera["evidence_source"] = {"url": str(clips["main"])}
    handoff = RecordingHandoff(embedded.spool_dir)
    with running(write_cameras(tmp_path, clips["model"], camera), handoff, StatusBoard()):
        opened = wait_for(handoff.opened, 120, "the violation to open and be handed off")
    event, frames, context = opened
    assert context.evidence_stream == "main"
    assert context.frame_wh == MAIN_WH
    # the event's box is mapped onto the main stream exactly: 3x the detection box (oracle box +- 2 px)
    assert np.allclose(event.bbox_xyxy, [3 * v for v in OBJECT_SUB], atol=3 * 2)
    legal = {(f.seq, f.variant): f for f in frames if not f.strip}
    assert sorted(legal) == [(s, v) for s in (1, 2) for v in ("annotated", "clean", "crop")]
    for seq in (1, 2):
        clean = decode(legal[(seq, "clean")].jpeg)
        assert clean.shape == (1080, 1920, 3)
        x1, y1, x2, y2 = (round(v) for v in event.bbox_xyxy)
        assert clean[y1 + 6 : y2 - 6, x1 + 6 : x2 - 6].mean() > 200  # the box lies on the object
        assert_moment(clean, legal[(seq, "clean")].frame_ts, gain=3.0)  # the event's moment
        annotated = decode(legal[(seq, "annotated")].jpeg)
        edge = annotated[(y1 + y2) // 2, x1 - 2 : x1 + 2].astype(int)
        assert (edge[:, 2] - edge[:, 0] > 80).any()  # the red violation box drawn at the mapped place
    gap_s = (legal[(2, "clean")].frame_ts - legal[(1, "clean")].frame_ts).total_seconds()
    assert gap_s >= 10

    # the frame strip: 6-10 downscaled annotated frames across the dwell, in time order
    strip = sorted((f for f in frames if f.strip), key=lambda f: f.seq)
    assert 6 <= len(strip) <= 10
    assert {f.variant for f in strip} == {"annotated"} and strip[0].seq == STRIP_SEQ_BASE
    times = [f.frame_ts for f in strip]
    assert times == sorted(times) and len(set(times)) == len(times)
    first, crossing = legal[(1, "clean")].frame_ts, legal[(2, "clean")].frame_ts
    assert first <= times[0] and times[-1] <= crossing
    assert (times[-1] - times[0]).total_seconds() >= 0.6 * gap_s
    assert decode(strip[0].jpeg).shape == (360, 640, 3)

    from urbaneye.db.models import Case, Evidence
    from urbaneye.db.session import session_scope

    with session_scope(embedded.db_url) as session:
        case = session.query(Case).filter_by(violation_id=event.violation_id).one()
        assert list(case.frame_wh) == list(MAIN_WH) and case.evidence_stream == "main"
        assert np.allclose(case.bbox_xyxy, event.bbox_xyxy)
        seqs = sorted({e.seq for e in session.query(Evidence).filter_by(case_id=case.id)})
        assert seqs == [1, 2, *range(STRIP_SEQ_BASE, STRIP_SEQ_BASE + len(strip))]


@pytest.mark.parametrize("main", ["broken", "missing"])
def test_a_main_stream_that_fails_falls_back_to_the_substream_and_says_so(
    embedded: object, tmp_path: Path, clips: dict[str, Path], main: str
) -> None:
    url = str(clips["broken"]) if main == "broken" else str(tmp_path / "nowhere.mp4")
    camera = camera_dict("cam-fb", str(clips["sub"]), garbage_dwell_s=12, evidence_source={"url": url})
    handoff = RecordingHandoff(embedded.spool_dir)
    board = StatusBoard()
    with running(write_cameras(tmp_path, clips["model"], camera), handoff, board):
        event, frames, context = wait_for(handoff.opened, 120, "the violation to open and be handed off")
        done = board.get("cam-fb").frames_processed
        wait_for(lambda: board.get("cam-fb").frames_processed > done + 5, 60, "the camera to go on")
    assert context.evidence_stream == "sub_fallback"
    assert context.frame_wh == SUB_WH
    assert np.allclose(event.bbox_xyxy, OBJECT_SUB, atol=2)
    from urbaneye.db.models import Case
    from urbaneye.db.session import session_scope

    with session_scope(embedded.db_url) as session:
        case = session.query(Case).filter_by(violation_id=event.violation_id).one()
        assert (case.evidence_stream, list(case.frame_wh)) == ("sub_fallback", list(SUB_WH))
    clean = {f.seq: f for f in frames if f.variant == "clean"}
    assert sorted(clean) == [1, 2]
    for f in clean.values():
        image = decode(f.jpeg)
        assert image.shape == (360, 640, 3)
        assert_moment(image, f.frame_ts, gain=1.0)


class SilentServer:
    """Accepts TCP connections and never answers (a main stream that hangs); holds them until closed."""

    def __init__(self) -> None:
        self.port = free_port()
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self.accepted: list[socket.socket] = []
        self.on_accept: Callable[[], None] = lambda: None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self._sock.accept()
                self.on_accept()
                self.accepted.append(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (a bare close does not)
        self._sock.close()
        self._thread.join(10)
        for conn in self.accepted:
            conn.close()


def test_a_hanging_main_stream_never_stalls_the_camera(
    embedded: object, tmp_path: Path, clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # FFmpeg would wait a minute for the silent server; the keeper gives up after its deadline
    monkeypatch.setattr(evidence_stream, "MAIN_OPEN_TIMEOUT_S", 60.0)
    monkeypatch.setattr(evidence_stream, "GRAB_DEADLINE_S", 1.0)
    server = SilentServer()
    url = f"rtsp://127.0.0.1:{server.port}/main"
    source = {"url": str(clips["sub"]), "loop": True}
    camera = camera_dict("cam-hang", str(clips["sub"]), 12, source=source, evidence_source={"url": url})
    handoff = RecordingHandoff(embedded.spool_dir)
    board = StatusBoard()
    at_accept: list[int] = []
    server.on_accept = lambda: at_accept.append(board.get("cam-hang").frames_processed)
    try:
        with running(write_cameras(tmp_path, clips["model"], camera), handoff, board):
            wait_for(lambda: at_accept, 60, "the evidence grab to connect to the main stream")
            # the grab still hangs (the server holds the connection) while the camera goes on
            wait_for(
                lambda: board.get("cam-hang").frames_processed >= at_accept[0] + 25,
                60,
                "frames processed while the main stream hangs",
            )
            event, frames, context = wait_for(handoff.opened, 120, "the violation to open")
    finally:
        server.close()
    assert context.evidence_stream == "sub_fallback"
    assert {decode(f.jpeg).shape for f in frames if f.variant == "clean"} == {(360, 640, 3)}


# ---------------------------------------------------------------------------------------- the pieces


@pytest.mark.parametrize(
    ("box", "from_wh", "to_wh", "expected"),
    [
        ((240, 130, 400, 290), (640, 360), (1920, 1080), (720, 390, 1200, 870)),
        ((352, 288, 704, 576), (704, 576), (1920, 1080), (960, 540, 1920, 1080)),
        ((10, 20, 30, 40), (1920, 1080), (1920, 1080), (10, 20, 30, 40)),
    ],
)
def test_map_box_scales_each_axis_by_the_frame_ratio(box, from_wh, to_wh, expected) -> None:  # noqa: ANN001
    assert map_box(box, from_wh, to_wh) == pytest.approx(expected)
    det = map_detections(Detections(xyxy=[box], confidence=[0.9], class_id=[0]), from_wh, to_wh)
    assert det.xyxy[0].tolist() == pytest.approx(expected)


def test_file_main_stream_reads_the_moment_and_reopens_to_go_back(clips: dict[str, Path]) -> None:
    stream = FileMainStream(SourceConfig(url=str(clips["main"])), keep_open=True)
    try:
        for video_s in (3.0, 3.0, 7.5, 2.0, 12.0):
            moment = EvidenceMoment(START + dt.timedelta(seconds=video_s), video_s)
            frame = stream.frame_at(moment)
            assert frame.wh == MAIN_WH
            assert_moment(frame.image, frame.frame_time, gain=3.0)
        with pytest.raises(MainStreamError, match="position is unknown"):
            stream.frame_at(EvidenceMoment(START, None))
    finally:
        stream.close()


def test_evidence_below_gat832_size_is_named(
    clips: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    from vision.config import CameraConfig

    assert (
        below_legal_size((704, 576)) and below_legal_size((1280, 576)) and not below_legal_size((1280, 720))
    )
    camera = CameraConfig(
        id="cam-d1", source={"url": str(clips["sub"])}, evidence_source={"url": str(clips["small_main"])}
    )
    streams = EvidenceStreams()
    with caplog.at_level("WARNING", logger="streams.evidence_stream"):
        frame = streams.frame_at(camera, EvidenceMoment(START + dt.timedelta(seconds=1), 1.0))
    assert frame.wh == (704, 576)
    assert streams.below_legal == {"cam-d1": (704, 576)}
    assert "704x576" in caplog.text and "GA/T 832" in caplog.text


def test_a_failed_main_stream_is_not_retried_for_every_event(clips: dict[str, Path]) -> None:
    from vision.config import CameraConfig

    camera = CameraConfig(
        id="cam-bad", source={"url": str(clips["sub"])}, evidence_source={"url": str(clips["broken"])}
    )
    streams = EvidenceStreams()
    moment = EvidenceMoment(START, 1.0)
    with pytest.raises(MainStreamError, match="could not be opened"):
        streams.frame_at(camera, moment)
    with pytest.raises(MainStreamError, match="next try in"):
        streams.frame_at(camera, moment)
    assert (streams.failures, streams.main_frames) == (2, 0)


@pytest.fixture
def mjpeg_main() -> Iterator[MjpegServer]:
    server = MjpegServer(fps=10, size=(1280, 720)).start()
    yield server
    server.stop()


def test_live_main_stream_on_demand_and_kept_open(mjpeg_main: MjpegServer) -> None:
    from vision.config import CameraConfig

    on_demand = CameraConfig(id="cam-od", source={"url": "sub.mp4"}, evidence_source={"url": mjpeg_main.url})
    streams = EvidenceStreams()
    now = dt.datetime.now(dt.UTC)
    frame = streams.frame_at(on_demand, EvidenceMoment(now, None))
    assert frame.wh == (1280, 720) and streams.below_legal == {}
    assert abs((frame.frame_time - now).total_seconds()) <= evidence_stream.MAX_SKEW_S

    ring = LiveRingStream(SourceConfig(url=mjpeg_main.url), period_s=0.2, ring_frames=10)
    try:
        wait_for(lambda: ring.error == "", 30, "the kept-open main stream to deliver frames")
        sent = wait_for(lambda: mjpeg_main.frames_sent >= 20 and mjpeg_main.frames_sent, 30, "frames")
        moment = EvidenceMoment(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=0.5), None)
        frame = ring.frame_at(moment)
        assert frame.wh == (1280, 720)
        assert abs((frame.frame_time - moment.frame_time).total_seconds()) <= evidence_stream.MAX_SKEW_S
        assert (
            ring.frame_at(moment).frame_time
            <= ring.frame_at(EvidenceMoment(dt.datetime.now(dt.UTC), None)).frame_time
        )
        # the one connection keeps streaming between grabs (waited for: a loaded machine may not have sent one yet)
        wait_for(lambda: mjpeg_main.frames_sent > sent, 30, "the kept-open connection to stream on")
    finally:
        ring.close()
    assert ring.wait_closed(10)
