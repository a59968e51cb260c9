"""Real test sources for the stream workers: clips, an oracle ONNX detector, MJPEG and RTSP servers.

Everything runs on loopback in the test process; nothing is mocked. The "oracle" detector is a genuine
ONNX model in the ultralytics YOLO export layout (output ``(1, 4+nc, N)``, ``names``/``imgsz`` metadata)
whose N anchors are fixed boxes scored by the mean brightness inside them: a white rectangle drawn on a
dark clip is "detected" by the real ``vision.detector.OnnxDetector``, deterministically.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

from vision.types import OBJECT_KINDS

#: Size of the oracle model input, px (tiny: inference costs ~nothing).
ORACLE_IMGSZ_PX = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------- clips
Painter = Callable[[np.ndarray, float], None]  # draws on a BGR frame at time t (s)


def write_clip(
    path: Path,
    seconds: float,
    fps: float = 10.0,
    size: tuple[int, int] = (320, 240),
    paint: Painter | None = None,
) -> Path:
    """An MPEG-4 clip of ``seconds`` at ``fps``: dark grey background, ``paint`` draws the scene."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), f"cv2 could not write {path}"
    for i in range(round(seconds * fps)):
        frame = np.full((h, w, 3), 30, np.uint8)
        if paint is not None:
            paint(frame, i / fps)
        writer.write(frame)
    writer.release()
    return path


def box_painter(box_xyxy: tuple[int, int, int, int], start_s: float, end_s: float = 1e9) -> Painter:
    """Paints a white rectangle (the oracle's 'object') during [start_s, end_s)."""
    x1, y1, x2, y2 = box_xyxy

    def paint(frame: np.ndarray, t: float) -> None:
        if start_s <= t < end_s:
            frame[y1:y2, x1:x2] = 255

    return paint


def h264_annexb(src: Path, out: Path) -> Path:
    """Re-encode a clip as a raw H.264 Annex-B stream with an AUD before each frame (for the RTSP server)."""
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(src),
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-bf",
            "0",
            "-g",
            "10",
            "-x264-params",
            "aud=1",
            "-f",
            "h264",
            str(out),
        ],
        check=True,
    )
    return out


# ------------------------------------------------------------------------------------- oracle model
@dataclass(frozen=True)
class OracleAnchor:
    box_xyxy: tuple[int, int, int, int]  # in frame pixels
    kind: str  # an ObjectKind name


def build_oracle_model(
    path: Path, anchors: list[OracleAnchor], frame_wh: tuple[int, int] = (320, 240)
) -> Path:
    """Write an ONNX 'detector' that scores each anchor box by the mean brightness inside it."""
    import onnx
    from onnx import TensorProto, helper

    s = ORACLE_IMGSZ_PX
    fw, fh = frame_wh
    gain = min(s / fh, s / fw)
    left = round((s - round(fw * gain)) / 2 - 0.1)
    top = round((s - round(fh * gain)) / 2 - 0.1)
    labels = [str(k) for k in OBJECT_KINDS]
    nc, n = len(labels), len(anchors)
    nodes, inits = [], []
    boxes = np.zeros((1, 4, n), np.float32)
    onehot = np.zeros((1, nc, n), np.float32)
    means = []
    for i, a in enumerate(anchors):
        x1, y1, x2, y2 = (
            a.box_xyxy[0] * gain + left,
            a.box_xyxy[1] * gain + top,
            a.box_xyxy[2] * gain + left,
            a.box_xyxy[3] * gain + top,
        )
        boxes[0, :, i] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        onehot[0, labels.index(a.kind), i] = 1.0
        ix1, iy1 = int(np.ceil(x1)), int(np.ceil(y1))
        ix2, iy2 = max(int(np.floor(x2)), ix1 + 1), max(int(np.floor(y2)), iy1 + 1)
        for name, value in ((f"st{i}", [0, 0, iy1, ix1]), (f"en{i}", [1, 3, iy2, ix2])):
            inits.append(helper.make_tensor(name, TensorProto.INT64, [4], value))
        nodes.append(helper.make_node("Slice", ["images", f"st{i}", f"en{i}"], [f"crop{i}"]))
        nodes.append(helper.make_node("ReduceMean", [f"crop{i}"], [f"mean{i}"], axes=[1, 2, 3], keepdims=1))
        means.append(f"mean{i}")  # (1, 1, 1, 1)
    inits += [
        helper.make_tensor("boxes", TensorProto.FLOAT, boxes.shape, boxes.ravel()),
        helper.make_tensor("onehot", TensorProto.FLOAT, onehot.shape, onehot.ravel()),
        helper.make_tensor("shape_1_1_n", TensorProto.INT64, [3], [1, 1, n]),
    ]
    nodes += [
        helper.make_node("Concat", means, ["means4"], axis=3),  # (1, 1, 1, n)
        helper.make_node("Reshape", ["means4", "shape_1_1_n"], ["means"]),  # (1, 1, n)
        helper.make_node("Mul", ["onehot", "means"], ["scores"]),  # (1, nc, n)
        helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1),  # (1, 4+nc, n)
    ]
    graph = helper.make_graph(
        nodes,
        "oracle",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, s, s])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + nc, n])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="urbaneye-tests"
    )
    model.ir_version = 8
    for key, value in {
        "names": str(dict(enumerate(labels))),
        "imgsz": str([s, s]),
        "task": "detect",
        "model_version": "oracle",
    }.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


# ------------------------------------------------------------------------------------- MJPEG server
class MjpegServer:
    """``multipart/x-mixed-replace`` JPEG stream on loopback at ``fps``, like an IP camera's /video."""

    def __init__(
        self, fps: float = 10.0, size: tuple[int, int] = (320, 240), port: int | None = None
    ) -> None:
        self.fps, self.size = fps, size
        self.port = port or free_port()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self.frames_sent = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video"

    def start(self) -> MjpegServer:
        server = self
        self._stop.clear()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                w, h = server.size
                i = 0
                while not server._stop.is_set():
                    img = np.full((h, w, 3), 30, np.uint8)
                    cv2.putText(img, str(i), (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
                    jpg = cv2.imencode(".jpg", img)[1].tobytes()
                    try:
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                            + jpg
                            + b"\r\n"
                        )
                    except OSError:
                        return
                    server.frames_sent += 1
                    i += 1
                    server._stop.wait(1.0 / server.fps)
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


# -------------------------------------------------------------------------------------- RTSP server
def _nal_units(data: bytes) -> list[bytes]:
    out, i, n = [], 0, len(data)
    starts = []
    while True:
        j = data.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else n
        nal = data[s:e].rstrip(b"\x00") if k + 1 < len(starts) else data[s:e]
        if nal:
            out.append(nal)
    return out


def _access_units(h264: bytes) -> list[list[bytes]]:
    """NAL units grouped into frames (each starts with an access unit delimiter, type 9)."""
    units: list[list[bytes]] = []
    for nal in _nal_units(h264):
        if nal[0] & 0x1F == 9 or not units:
            units.append([])
        if nal[0] & 0x1F != 9:
            units[-1].append(nal)
    return [u for u in units if u]


class RtspServer:
    """A minimal RTSP server (RFC 2326) streaming H.264 over RTP interleaved on the TCP connection.

    Serves one looping Annex-B clip at ``fps`` to any number of clients; UDP transport is refused (461),
    so a client must use ``rtsp_transport=tcp``. ``stop()`` drops every connection like a dead camera.
    """

    def __init__(self, h264_path: Path, fps: float = 10.0, port: int | None = None) -> None:
        self.units = _access_units(Path(h264_path).read_bytes())
        assert self.units, f"{h264_path}: no H.264 access units"
        self.fps = fps
        self.port = port or free_port()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._frozen: set[int] = set()  # id() of connections that get no more packets (a stall)
        self.sps = next(n for u in self.units for n in u if n[0] & 0x1F == 7)
        self.pps = next(n for u in self.units for n in u if n[0] & 0x1F == 8)

    def url(self, user: str | None = None, password: str | None = None) -> str:
        cred = f"{user}:{password}@" if user else ""
        return f"rtsp://{cred}127.0.0.1:{self.port}/cam"

    def start(self) -> RtspServer:
        self._stop.clear()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(8)
        sock.settimeout(0.2)
        self._sock = sock
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()
        return self

    def stall(self) -> None:
        """Stop sending to the connected clients but keep their TCP connections open (a hung camera)."""
        self._frozen |= {id(c) for c in self._conns}

    def stop(self) -> None:
        self._stop.set()
        for c in list(self._conns):
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()
        self._conns.clear()
        if self._sock is not None:
            self._acceptor.join()
            self._sock.close()
            self._sock = None

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()  # type: ignore[union-attr]
            except (TimeoutError, OSError):
                continue
            if self._stop.is_set():
                conn.close()
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _sdp(self) -> bytes:
        sprop = base64.b64encode(self.sps).decode() + "," + base64.b64encode(self.pps).decode()
        return (
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=UrbanEye test\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
            "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
            f"a=fmtp:96 packetization-mode=1;sprop-parameter-sets={sprop}\r\na=control:track0\r\n"
        ).encode()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        buf = b""
        playing = threading.Event()
        lock = threading.Lock()
        try:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                buf += chunk
                while buf:
                    if buf[0:1] == b"$":  # interleaved RTCP from the client: skip
                        if len(buf) < 4:
                            break
                        size = struct.unpack(">H", buf[2:4])[0]
                        if len(buf) < 4 + size:
                            break
                        buf = buf[4 + size :]
                        continue
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head, buf = buf[:end].decode("latin-1"), buf[end + 4 :]
                    reply = self._reply(head, conn, playing, lock)
                    with lock:
                        conn.sendall(reply)
        except OSError:
            return
        finally:
            playing.clear()
            with contextlib.suppress(OSError):
                conn.close()

    def _reply(self, head: str, conn: socket.socket, playing: threading.Event, lock: threading.Lock) -> bytes:
        lines = head.split("\r\n")
        method = lines[0].split(" ")[0]
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        cseq = headers.get("cseq", "0")
        extra, body = "", b""
        status = "200 OK"
        if method == "OPTIONS":
            extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n"
        elif method == "DESCRIBE":
            body = self._sdp()
            extra = (
                f"Content-Base: rtsp://127.0.0.1:{self.port}/cam/\r\nContent-Type: application/sdp\r\n"
                f"Content-Length: {len(body)}\r\n"
            )
        elif method == "SETUP":
            transport = headers.get("transport", "")
            if "TCP" not in transport.upper():
                return f"RTSP/1.0 461 Unsupported Transport\r\nCSeq: {cseq}\r\n\r\n".encode()
            extra = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 12345678;timeout=60\r\n"
        elif method == "PLAY":
            extra = "Session: 12345678\r\nRange: npt=0.000-\r\n"
            if not playing.is_set():
                playing.set()
                threading.Thread(target=self._stream, args=(conn, playing, lock), daemon=True).start()
        elif method == "TEARDOWN":
            playing.clear()
        return f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n{extra}\r\n".encode() + body

    def _stream(self, conn: socket.socket, playing: threading.Event, lock: threading.Lock) -> None:
        seq, ssrc, frame = 0, 0x1234ABCD, 0
        t0 = time.monotonic()
        try:
            while playing.is_set() and not self._stop.is_set():
                if id(conn) in self._frozen:
                    self._stop.wait(0.1)
                    continue
                nals = self.units[frame % len(self.units)]
                ts = (frame * 90000 // int(self.fps)) & 0xFFFFFFFF
                for k, nal in enumerate(nals):
                    for payload, last_frag in self._packetize(nal):
                        marker = 0x80 if (k == len(nals) - 1 and last_frag) else 0
                        rtp = struct.pack(">BBHII", 0x80, marker | 96, seq & 0xFFFF, ts, ssrc) + payload
                        with lock:
                            conn.sendall(b"$\x00" + struct.pack(">H", len(rtp)) + rtp)
                        seq += 1
                frame += 1
                delay = t0 + frame / self.fps - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
        except OSError:
            return

    @staticmethod
    def _packetize(nal: bytes, mtu: int = 1400) -> Iterator[tuple[bytes, bool]]:
        if len(nal) <= mtu:
            yield nal, True
            return
        header, body = nal[0], nal[1:]
        fu_ind = (header & 0xE0) | 28
        nal_type = header & 0x1F
        chunks = [body[i : i + mtu] for i in range(0, len(body), mtu)]
        for i, chunk in enumerate(chunks):
            start = 0x80 if i == 0 else 0
            end = 0x40 if i == len(chunks) - 1 else 0
            yield bytes([fu_ind, start | end | nal_type]) + chunk, i == len(chunks) - 1


def letterbox_tensor(frame_bgr: np.ndarray, imgsz_px: int = ORACLE_IMGSZ_PX) -> np.ndarray:
    """(3, s, s) float32 RGB/255 input exactly as ``OnnxDetector`` letterboxes a frame (pad 114)."""
    h, w = frame_bgr.shape[:2]
    gain = min(imgsz_px / h, imgsz_px / w)
    new_w, new_h = max(round(w * gain), 1), max(round(h * gain), 1)
    left = round((imgsz_px - new_w) / 2 - 0.1)
    top = round((imgsz_px - new_h) / 2 - 0.1)
    out = np.full((3, imgsz_px, imgsz_px), 114 / 255.0, np.float32)
    resized = cv2.resize(frame_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    out[:, top : top + new_h, left : left + new_w] = resized[:, :, ::-1].transpose(2, 0, 1) / 255.0
    return out


def build_change_oracle(
    path: Path, anchors: list[OracleAnchor], background_bgr: np.ndarray, gain: float = 8.0
) -> Path:
    """An ONNX 'detector' scoring each anchor by how much its box differs from ``background_bgr``.

    score = clip(gain * mean|input - background| over the box, 0, 1): an object put down in the box
    scores ~1, the empty scene ~0 (compression noise), so rendered scenarios become deterministic tests.
    """
    import onnx
    from onnx import TensorProto, helper

    s = ORACLE_IMGSZ_PX
    fh, fw = background_bgr.shape[:2]
    scale = min(s / fh, s / fw)
    left = round((s - round(fw * scale)) / 2 - 0.1)
    top = round((s - round(fh * scale)) / 2 - 0.1)
    bg = letterbox_tensor(background_bgr)[None]
    labels = [str(k) for k in OBJECT_KINDS]
    nc, n = len(labels), len(anchors)
    boxes = np.zeros((1, 4, n), np.float32)
    onehot = np.zeros((1, nc, n), np.float32)
    nodes = [
        helper.make_node("Sub", ["images", "background"], ["delta"]),
        helper.make_node("Abs", ["delta"], ["absd"]),
    ]
    inits = [
        helper.make_tensor("background", TensorProto.FLOAT, bg.shape, bg.ravel()),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [gain]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
    ]
    means = []
    for i, a in enumerate(anchors):
        x1, y1, x2, y2 = (v * scale + o for v, o in zip(a.box_xyxy, (left, top, left, top), strict=True))
        boxes[0, :, i] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        onehot[0, labels.index(a.kind), i] = 1.0
        ix1, iy1 = int(np.floor(x1)), int(np.floor(y1))
        ix2, iy2 = max(int(np.ceil(x2)), ix1 + 1), max(int(np.ceil(y2)), iy1 + 1)
        inits += [
            helper.make_tensor(f"st{i}", TensorProto.INT64, [4], [0, 0, iy1, ix1]),
            helper.make_tensor(f"en{i}", TensorProto.INT64, [4], [1, 3, iy2, ix2]),
        ]
        nodes += [
            helper.make_node("Slice", ["absd", f"st{i}", f"en{i}"], [f"crop{i}"]),
            helper.make_node("ReduceMean", [f"crop{i}"], [f"mean{i}"], axes=[1, 2, 3], keepdims=1),
        ]
        means.append(f"mean{i}")
    inits += [
        helper.make_tensor("boxes", TensorProto.FLOAT, boxes.shape, boxes.ravel()),
        helper.make_tensor("onehot", TensorProto.FLOAT, onehot.shape, onehot.ravel()),
        helper.make_tensor("shape_1_1_n", TensorProto.INT64, [3], [1, 1, n]),
    ]
    nodes += [
        helper.make_node("Concat", means, ["means4"], axis=3),
        helper.make_node("Reshape", ["means4", "shape_1_1_n"], ["means"]),
        helper.make_node("Mul", ["means", "gain"], ["scaled"]),
        helper.make_node("Clip", ["scaled", "zero", "one"], ["clipped"]),
        helper.make_node("Mul", ["onehot", "clipped"], ["scores"]),
        helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "change-oracle",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, s, s])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + nc, n])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="urbaneye-tests"
    )
    model.ir_version = 8
    for key, value in {"names": str(dict(enumerate(labels))), "imgsz": str([s, s]), "task": "detect",
                       "model_version": "change-oracle"}.items():  # fmt: skip
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
