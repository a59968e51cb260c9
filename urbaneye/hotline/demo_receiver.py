"""DEMO ONLY: a stand-in for the city's hotline platform (数字城管 / 12345), used by ``urbaneye run --demo``.

It is not the city's platform and never runs outside the demo. It listens on loopback, accepts the signed
cases our outbox pushes (checking the signature like a real intake), answers with a reference number, and
then walks each case through 受理 -> 派遣 -> 处置 -> 核查 -> 结案 over time by calling the REAL signed
callback of the API (``POST /api/v1/hotline/callback``, ``urbaneye.hotline.callbacks``), so the demo's
statistics page shows accepted and closed cases.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from urbaneye.hotline.signing import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    signed_headers,
    verify,
)

log = logging.getLogger(__name__)

#: The hotline's steps after it takes a case, in order (the callback's Chinese status names).
DEMO_STEPS = ("受理", "派遣", "处置", "核查", "结案")


@dataclass(frozen=True)
class DemoHotlineTimings:
    """Seconds from taking a case to each step's callback (one per ``DEMO_STEPS``), in order."""

    after_s: tuple[float, ...] = (5.0, 20.0, 45.0, 60.0, 75.0)

    def __post_init__(self) -> None:
        if len(self.after_s) != len(DEMO_STEPS) or list(self.after_s) != sorted(self.after_s):
            raise ValueError(
                f"DemoHotlineTimings.after_s needs {len(DEMO_STEPS)} rising delays, got {self.after_s}"
            )

    def sped_up(self, speed: float) -> DemoHotlineTimings:
        """The same steps ``speed`` times sooner (``urbaneye run --demo --speed``: demos on accelerated time).

        Example:
            >>> DemoHotlineTimings((5.0, 10.0, 15.0, 20.0, 25.0)).sped_up(5).after_s
            (1.0, 2.0, 3.0, 4.0, 5.0)
        """
        if speed <= 0:
            raise ValueError(f"DemoHotlineTimings.sped_up: speed {speed} must be > 0 (1.0 = as is)")
        return DemoHotlineTimings(tuple(t / speed for t in self.after_s))


@dataclass(order=True)
class _Step:
    due: float
    order: int
    case_id: str = field(compare=False)
    status: str = field(compare=False)
    ref: str = field(compare=False)


class DemoHotline:
    """The demo hotline: ``start()`` binds loopback and returns the intake URL; ``stop()`` ends it."""

    def __init__(
        self,
        secret: str,
        callback_url: str,
        timings: DemoHotlineTimings | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.secret = secret
        self.callback_url = callback_url
        self.timings = timings or DemoHotlineTimings()
        self.host = host
        self.received: dict[str, str] = {}  # case id -> our reference number
        self.rechecks: list[str] = []  # idempotency keys of the re-check reports noted (no steps follow)
        self.callbacks_sent: list[tuple[str, str]] = []  # (case id, status) acknowledged by the API
        self._lock = threading.Lock()
        self._steps: list[_Step] = []
        self._order = itertools.count()
        self._wake = threading.Condition(self._lock)
        self._stopped = False
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("DemoHotline.url: call start() first")
        return f"http://{self.host}:{self._server.server_address[1]}/intake"

    def start(self) -> str:
        self._server = ThreadingHTTPServer((self.host, 0), self._handler())
        self._server.daemon_threads = True
        for target, name in (
            (self._server.serve_forever, "demo-hotline-http"),
            (self._run_steps, "demo-hotline"),
        ):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        log.info("DEMO hotline (a stand-in for the city's platform) listening at %s", self.url)
        return self.url

    def stop_steps(self) -> None:
        """Walk no case further (the API it calls back is stopping); the intake still answers pushes."""
        with self._lock:
            self._stopped = True
            self._wake.notify_all()

    def stop(self) -> None:
        self.stop_steps()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for t in self._threads:
            t.join(5)

    def take(self, case_id: str) -> str:
        """Take a case (once per id, like a real intake's ``Idempotency-Key``) and schedule its steps."""
        with self._lock:
            if case_id in self.received:
                return self.received[case_id]
            ref = f"DEMO-{len(self.received) + 1:06d}"
            self.received[case_id] = ref
            now = time.monotonic()
            for status, after in zip(DEMO_STEPS, self.timings.after_s, strict=True):
                heapq.heappush(self._steps, _Step(now + after, next(self._order), case_id, status, ref))
            self._wake.notify_all()
        log.info("DEMO hotline took case %s as %s", case_id, ref)
        return ref

    def note_recheck(self, key: str, report: dict) -> str:
        """A re-check report on a case we have (``urbaneye.rechecks``): noted once per key, answered with a
        reference; it starts no steps (the case's own steps go on)."""
        with self._lock:
            if key not in self.rechecks:
                self.rechecks.append(key)
                log.info(
                    "DEMO hotline noted re-check %s of case %s: %s",
                    key,
                    report["case_id"],
                    report["result_zh"],
                )
            return f"DEMO-RECHECK-{self.rechecks.index(key) + 1:06d}"

    def _run_steps(self) -> None:
        while True:
            with self._lock:
                while not self._stopped and (not self._steps or self._steps[0].due > time.monotonic()):
                    timeout = self._steps[0].due - time.monotonic() if self._steps else None
                    self._wake.wait(timeout)
                if self._stopped:
                    return
                step = heapq.heappop(self._steps)
            self._callback(step)

    def _callback(self, step: _Step) -> None:
        body = json.dumps(
            {
                "case_id": step.case_id,
                "status": step.status,
                "ref": step.ref,
                "note": "演示热线（非真实平台）",
            },
            ensure_ascii=False,
        ).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", **signed_headers(self.secret, body)}
        try:
            resp = httpx.post(self.callback_url, content=body, headers=headers, timeout=10.0)
        except httpx.HTTPError as exc:
            # sent just as the demo stops: the API no longer answers, which is no news
            level = logging.INFO if self._stopped else logging.WARNING
            log.log(
                level, "DEMO hotline callback %s for case %s not sent: %s", step.status, step.case_id, exc
            )
            return
        if resp.status_code >= 400:
            log.warning(
                "DEMO hotline callback %s for case %s answered %d: %s",
                step.status,
                step.case_id,
                resp.status_code,
                resp.text[:200],
            )
            return
        with self._lock:
            self.callbacks_sent.append((step.case_id, step.status))
        log.info("DEMO hotline: case %s %s", step.case_id, step.status)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hotline = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, doc: dict) -> None:
                data = json.dumps(doc, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    verify(
                        hotline.secret,
                        body,
                        self.headers.get(SIGNATURE_HEADER),
                        self.headers.get(TIMESTAMP_HEADER),
                    )
                except SignatureError as exc:
                    self._answer(401, {"error": str(exc)})
                    return
                key = self.headers.get(IDEMPOTENCY_HEADER) or ""
                if not key:
                    self._answer(422, {"error": f"missing {IDEMPOTENCY_HEADER} header (the case id)"})
                    return
                report = _recheck_report(body)
                if report is not None:
                    self._answer(200, {"ref": hotline.note_recheck(key, report)})
                    return
                self._answer(200, {"ref": hotline.take(key)})

        return Handler


def _recheck_report(body: bytes) -> dict | None:
    """The body as a re-check report (``urbaneye.rechecks``: ``"message": "recheck"`` with the case id and
    the result in Chinese), or None for a new case (or anything else, which the steps take as a case)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    is_report = isinstance(doc, dict) and doc.get("message") == "recheck"
    return doc if is_report and {"case_id", "result_zh"} <= doc.keys() else None
