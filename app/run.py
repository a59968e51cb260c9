"""The main job (``urbaneye run``): stream workers + the API and reviewer UI in one process.

On embedded defaults when nothing else is configured (SQLite, file evidence store, in-process broker).
``--demo`` first makes the demo clips, migrates the database and creates the demo users. This is the
composition root: the camera runtime (``streams``) never imports the web app (``api``) or the demo
(``datasets``); this module starts them side by side.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn

from api.app import create_app
from api.auth import DemoUsersRefused, ensure_demo_users, refuse_demo_users_in_production
from datasets.demo import ensure_demo_clips
from streams.run import (
    WorkerOptions,
    WorkerStack,
    install_stop_signals,
    load_cameras_lenient,
    refuse_invalid,
)
from streams.sources import mask_url
from urbaneye.audit_checkpoints import CheckpointThread
from urbaneye.db.migrate import upgrade
from urbaneye.db.session import session_scope
from urbaneye.hotline.demo_receiver import DemoHotline, DemoHotlineTimings
from urbaneye.settings import MIN_SECRET_BYTES, Settings, get_settings
from urbaneye.storage import get_store

log = logging.getLogger(__name__)


#: The demo's key for API tokens and the demo hotline's signatures when none of at least MIN_SECRET_BYTES is
#: set (production refuses ``--demo`` altogether, see ``refuse_demo_users_in_production``).
DEMO_SECRET = "urbaneye-demo-only-secret-never-use-in-production"
#: The demo's push policy when none is set.
DEMO_PUSH_POLICY = "open_air_barbecue=immediate"


def start_demo_hotline(
    settings: Settings, port: int, timings: DemoHotlineTimings | None = None
) -> tuple[Settings, DemoHotline | None]:
    """``--demo``: long enough keys, barbecues pushed without review, and the DEMO hotline (a stand-in
    for the city's platform) as the intake.

    A configured ``URBANEYE_HOTLINE_URL`` wins (no demo hotline). Returns the settings to run with.
    """
    for name in ("secret_key", "hotline_secret"):
        if len(getattr(settings, name).encode()) < MIN_SECRET_BYTES:
            os.environ[f"URBANEYE_{name.upper()}"] = DEMO_SECRET
    if not settings.push_policy:
        # the night barbecue (a fire risk) goes to the hotline without review, so the demo closes a case
        # on its own; the other kinds wait for a reviewer's confirm as in production's default
        os.environ["URBANEYE_PUSH_POLICY"] = DEMO_PUSH_POLICY
    hotline = None
    if not settings.hotline_url:
        hotline = DemoHotline(DEMO_SECRET, f"http://127.0.0.1:{port}/api/v1/hotline/callback", timings)
        os.environ["URBANEYE_HOTLINE_URL"] = hotline.start()
    get_settings.cache_clear()
    return get_settings(), hotline


def quiet_embedded_task_log(settings: Settings) -> None:
    """Keep the main job's INFO log to what happens: with the in-process broker each task run (an outbox row
    waiting for its push, every few seconds) is not news, nor is kombu's note that the in-memory transport
    has no host name; httpx's line per request (each push, each demo-hotline callback) repeats what our own
    loggers say about it."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if settings.broker_url.startswith("memory://"):
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        logging.getLogger("kombu.connection").setLevel(logging.ERROR)


def demo_cameras(settings: Settings) -> Path:
    """The demo cameras file, its clips rendered under ``data_dir/demo`` on first use."""
    return Path(ensure_demo_clips(settings.data_dir / "demo"))


def cameras_to_run(settings: Settings, cameras_path: Path | None, *, demo: bool, strict: bool) -> Path:
    """The cameras file to run, checked before anything starts (one bad camera fails only with ``--strict``)."""
    if demo:
        try:
            refuse_demo_users_in_production(settings)
        except DemoUsersRefused as exc:
            raise SystemExit(f"urbaneye run --demo: {exc}") from None
        cameras_path = demo_cameras(settings)
    if cameras_path is None:
        raise SystemExit("urbaneye run: give --cameras FILE.yaml, or --demo for the bundled demo cameras")
    _, invalid = load_cameras_lenient(cameras_path)
    if strict:
        refuse_invalid(invalid, "urbaneye run")
    return Path(cameras_path)


def prepare_database(settings: Settings, *, demo: bool) -> CheckpointThread:
    """Migrate, start the audit checkpoints (embedded mode has no separate relay), add the demo users."""
    revision = upgrade(settings.db_url)
    log.info("database %s at revision %s", mask_url(settings.db_url), revision)
    checkpoints = CheckpointThread(settings.db_url, get_store(settings), settings.audit_checkpoint_interval_s)
    checkpoints.start()
    if demo:
        with session_scope(settings.db_url) as session:
            ensure_demo_users(session)
    return checkpoints


@dataclass
class RunningWorkers:
    """The stream workers of ``urbaneye run``: in this process (``stack``) or in child processes."""

    stack: WorkerStack | None = None
    children: subprocess.Popen | None = None
    stop_event: threading.Event | None = None

    def stop(self) -> None:
        if self.stop_event is not None:
            self.stop_event.set()
        if self.stack is not None:
            self.stack.stop()
        if self.children is not None:
            self.children.send_signal(signal.SIGTERM)
            self.children.wait(60)


def worker_processes_argv(options: WorkerOptions, processes: int) -> list[str]:
    """``urbaneye stream-worker`` command line that runs ``processes`` worker processes for ``options``."""
    argv = [sys.executable, "-m", "urbaneye.cli", "stream-worker", "--cameras", str(options.cameras_path)]
    argv += ["--processes", str(processes)] + (["--model", options.model_path] if options.model_path else [])
    argv += [] if options.gating else ["--no-motion-gating"]
    argv += ["--cameras-file-wins"] if options.cameras_file_wins else []
    argv += ["--strict"] if options.strict else []
    return argv


def start_workers(options: WorkerOptions, processes: int, settings: Settings) -> RunningWorkers:
    """Start the workers: in this process (a supervisor thread) or, with ``processes > 1``, as children."""
    if processes > 1:
        return RunningWorkers(children=subprocess.Popen(worker_processes_argv(options, processes)))
    stop_event = threading.Event()
    stack = WorkerStack(options, settings).start()
    threading.Thread(target=stack.run_until, args=(stop_event,), name="supervisor", daemon=True).start()
    return RunningWorkers(stack=stack, stop_event=stop_event)


def print_welcome(url: str, *, demo: bool) -> None:
    print(f"UrbanEye is running: {url}  (API docs: {url}/docs)", flush=True)
    if demo:
        print("  demo reviewer: demo / demo-review    demo admin: admin / admin-demo", flush=True)
        print(
            "  the demo cameras loop their clips; the first cases appear within a couple of minutes",
            flush=True,
        )


class _Server(uvicorn.Server):
    """uvicorn's server that first tells ``on_stop`` when Ctrl-C/SIGTERM arrives (before it stops answering)."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None] | None) -> None:
        super().__init__(config)
        self.on_stop = on_stop

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.on_stop is not None:
            self.on_stop()
        super().handle_exit(sig, frame)


def serve_api(host: str, port: int, on_stop: Callable[[], None] | None = None) -> None:
    """The API + reviewer UI until Ctrl-C/SIGTERM; ``on_stop`` runs as the API begins to stop."""
    # access log off: the reviewer UI polls and preloads, which would drown the workers' own log lines.
    # proxy_headers=False: X-Forwarded-For counts only from URBANEYE_TRUSTED_PROXIES (api.deps)
    # timeout_graceful_shutdown: open review screens hold a live-queue stream (api/routes/live.py) that
    # never ends by itself; stop waiting for them after a few seconds
    config = uvicorn.Config(
        create_app(),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
    server = _Server(config, on_stop)
    # uvicorn handles SIGINT/SIGTERM while serving and re-raises the signal once it has shut down; with
    # our handler in place that re-raise only sets the flag, so the workers still stop gracefully.
    install_stop_signals(threading.Event())
    server.run()


def run_main(
    cameras_path: Path | None,
    *,
    demo: bool,
    host: str | None = None,
    port: int | None = None,
    processes: int = 1,
    model_path: str | None = None,
    gating: bool = True,
    cameras_file_wins: bool = False,
    strict: bool = False,
    speed: float = 1.0,
) -> int:
    """``urbaneye run``: migrations, (demo users), workers, then the API + UI until Ctrl-C/SIGTERM.

    ``speed`` > 1 plays file sources (the demo clips) that many times faster and has the demo hotline answer
    that many times sooner: the demo on accelerated time (tests, a quick look)."""
    if speed != 1.0 and processes > 1:
        raise SystemExit("urbaneye run: --speed needs the in-process workers; leave out --processes")
    settings = get_settings()
    demo_hotline = None
    if demo:
        timings = DemoHotlineTimings().sped_up(speed)
        settings, demo_hotline = start_demo_hotline(settings, port or settings.port, timings)
    quiet_embedded_task_log(settings)
    cameras_path = cameras_to_run(settings, cameras_path, demo=demo, strict=strict)
    # the API lists the file's configured violation kinds (GET /api/v1/kinds)
    os.environ["URBANEYE_CAMERAS_FILE"] = str(Path(cameras_path).resolve())
    get_settings.cache_clear()
    settings = get_settings()
    checkpoints = prepare_database(settings, demo=demo)
    options = WorkerOptions(
        cameras_path=cameras_path,
        model_path=model_path,
        gating=gating,
        cameras_file_wins=cameras_file_wins,
        strict=strict,
        speed=speed,
    )
    host = host or settings.host
    port = port or settings.port
    workers = start_workers(options, processes, settings)
    print_welcome(f"http://{host}:{port}", demo=demo)
    try:
        serve_api(host, port, on_stop=demo_hotline.stop_steps if demo_hotline is not None else None)
    finally:
        # the demo hotline stopped calling the API back as the API began to stop (on_stop); it takes pushes
        # until the workers' outbox relay has stopped
        checkpoints.stop()
        workers.stop()
        if demo_hotline is not None:
            demo_hotline.stop()
    return 0
