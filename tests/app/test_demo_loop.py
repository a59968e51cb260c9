"""The demo's whole loop on accelerated time (issue 18 item 5): ``urbaneye run --demo --speed 4`` — the command
``scripts/demo.sh`` runs, on its embedded defaults (SQLite, local evidence store, in-process broker) — renders the
demo clips, runs the real stream worker on them four times faster than real time and the DEMO hotline four times
sooner. A reviewer confirms cases through the API as the review screen does (claim, then confirm). The demo reaches
a yellow escalation (a violation that recurs at the same place), a case closed through the demo hotline's signed
callbacks, and statistics with a non-zero 办结率; its INFO log stays quiet (no outbox 'waiting' task lines, no
line per HTTP request)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from datasets.demo import DEMO_CAMERAS, DEMO_SCENARIOS
from datasets.synth.scenario import load_scenario
from tests.conftest import free_port
from tests.waiting import wait_for
from vision.config import load_cameras

SPEED = 4
DEMO_CLIPS = sorted(DEMO_SCENARIOS.glob("*.yaml"))
#: rendered demo clips kept between runs (named by their content hash, as ``ensure_demo_clips`` names them): the
#: demo renders them once, as it does on a reviewer's machine, and each later run starts on them
CLIP_CACHE = (
    Path(os.environ.get("URBANEYE_TEST_CACHE", Path.home() / ".cache" / "urbaneye-tests")) / "demo-clips"
)
#: the demo reviewer of ``api.auth.ensure_demo_users`` (printed by ``urbaneye run --demo``)
REVIEWER = {"username": "demo", "password": "demo-review"}


@dataclass
class Demo:
    base: str
    log_path: Path
    proc: subprocess.Popen
    token: str = ""
    confirmed: list[str] = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines_with(self, *needles: str) -> list[str]:
        """The log's lines holding any of ``needles`` (a traceback with the lines after it)."""
        lines = self.log().splitlines()
        hits = [i for i, line in enumerate(lines) if any(n in line for n in needles)]
        return [line for i in hits for line in lines[i : i + (30 if "Traceback" in lines[i] else 1)]]

    def get(self, path: str, **params: object) -> dict:
        r = httpx.get(f"{self.base}{path}", params=params, headers=self._auth(), timeout=30)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def review_queue(self) -> None:
        """What the reviewer does at the review screen: take each pending case (claim) and confirm it."""
        for case in self.get("/api/v1/cases", status="pending_review", unclaimed="true", limit=50)["data"]:
            claim = httpx.post(
                f"{self.base}/api/v1/cases/{case['id']}/claim", headers=self._auth(), timeout=30
            )
            assert claim.status_code == 200, claim.text
            if not claim.json()["claimed"]:
                continue
            r = httpx.post(
                f"{self.base}/api/v1/cases/{case['id']}/verify",
                json={"decision": "confirm", "duration_ms": 4000},
                headers=self._auth(),
                timeout=30,
            )
            assert r.status_code == 200, r.text
            self.confirmed.append(case["id"])

    def cases(self) -> list[dict]:
        self.review_queue()
        return self.get("/api/v1/cases", limit=200)["data"]


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _copy_clips(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for clip in src.glob("demo_*.mp4"):
        if not (dst / clip.name).exists():
            shutil.copyfile(clip, dst / f"{clip.name}.tmp")
            (dst / f"{clip.name}.tmp").replace(dst / clip.name)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    port = free_port()
    data = tmp_path / "var"
    _copy_clips(CLIP_CACHE, data / "demo")
    # a fresh shell: no URBANEYE_* of the test run, only where to keep the data and a free metrics port
    env = {k: v for k, v in os.environ.items() if not k.startswith("URBANEYE_")}
    env.update(
        URBANEYE_ENVIRONMENT="development",
        URBANEYE_DATA_DIR=str(data),
        URBANEYE_METRICS_PORT=str(free_port()),
    )
    artifacts = os.environ.get("URBANEYE_ARTIFACTS")
    log_path = (Path(artifacts) if artifacts else tmp_path) / "demo-loop.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "urbaneye.cli", "run", "--demo", "--port", str(port), "--speed", str(SPEED)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    demo = Demo(f"http://127.0.0.1:{port}", log_path, proc)
    try:

        def up() -> bool:
            assert proc.poll() is None, "urbaneye run --demo exited:\n" + demo.log()
            return _up(demo.base)

        wait_for(up, timeout_s=240, interval_s=0.5, what="the demo's API (clips rendered, database migrated)")
        _copy_clips(data / "demo", CLIP_CACHE)
        r = httpx.post(f"{demo.base}/api/v1/auth/login", data=REVIEWER, timeout=30)
        assert r.status_code == 200, r.text
        demo.token = r.json()["access_token"]
        yield demo
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, demo.log()
    # a clean stop: the demo hotline calls back no stopped API, the outbox pushes to no stopped demo hotline
    assert not demo.lines_with("WARNING urbaneye.hotline", "Traceback")


def test_demo_reaches_yellow_escalation_a_closed_case_and_a_closure_rate(demo: Demo) -> None:
    def yellow() -> list[dict]:
        return [c for c in demo.cases() if c["escalation"] == "yellow"]

    wait_for(
        yellow, timeout_s=300, interval_s=1, what="a yellow escalation (a violation recurring at its place)"
    )

    def closed() -> list[dict]:
        return [c for c in demo.cases() if c["status"] == "closed"]

    case = wait_for(closed, timeout_s=180, interval_s=1, what="a case closed through the demo hotline")[0]
    assert case["hotline_ref"].startswith("DEMO-")
    steps = [e["to_status"] for e in demo.get(f"/api/v1/cases/{case['id']}/timeline")["data"]]
    hotline_steps = ["accepted", "dispatched", "handled", "verified", "closed"]
    # each signed callback, in order (a step may be noted twice: the case's change and what it started)
    assert list(dict.fromkeys(s for s in steps if s in hotline_steps)) == hotline_steps, steps

    def closure_rate() -> dict:
        demo.review_queue()
        totals = demo.get("/api/v1/stats")["totals"]
        return totals if totals["closure_rate"] else {}

    totals = wait_for(closure_rate, timeout_s=60, interval_s=1, what="statistics with a non-zero 办结率")
    assert totals["received"] >= totals["closed"] >= 1
    assert totals["closure_rate"] == pytest.approx(totals["closed"] / totals["received"])
    assert demo.confirmed, "the reviewer confirmed no case"
    # cases a reviewer confirmed go the same way as the barbecue pushed without review
    wait_for(
        lambda: any(c["id"] in demo.confirmed and c["status"] != "queued" for c in demo.cases()),
        timeout_s=120,
        interval_s=1,
        what="a reviewer-confirmed case taken by the demo hotline",
    )

    # no error; quiet at INFO (no task-run or per-request lines); the demo's keys are long enough for JWT
    assert not demo.lines_with("Traceback", "celery.app.trace", "httpx: HTTP Request", "InsecureKeyLength")


@pytest.mark.parametrize("path", DEMO_CLIPS, ids=[p.stem for p in DEMO_CLIPS])
def test_each_loop_of_a_demo_clip_is_a_new_offence(path: Path) -> None:
    """The demo's rules let each loop's violation close and stay closed past the re-open cooldown before the
    next loop's objects arrive: a new violation (new case, escalation), not the last one re-opened."""
    rules = load_cameras(DEMO_CAMERAS).rules
    scenario, _ = load_scenario(path)
    last_leave_s = max(a.leave_s for a in scenario.actors if a.arrive_s is not None and a.leave_s is not None)
    clear_s = scenario.duration_s - last_leave_s
    assert clear_s > rules.grace_s + rules.reopen_cooldown_s + 5, (path.stem, clear_s, rules)
