"""Operations commands: ``db upgrade``, ``audit verify``, ``worker``, ``relay``, ``bench cases``.

Light module: imports of the database, storage and Celery stay inside the handlers, because
``urbaneye.cli`` imports every area's ``cli.py`` to build its help.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vision.cli import ExamplesHelpFormatter


def add_commands(sub: argparse._SubParsersAction) -> None:
    _add_db(sub)
    _add_audit(sub)
    _add_worker_and_relay(sub)
    _add_bench_cases(sub)


def _add_db(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser(
        "db",
        help="database migrations",
        formatter_class=ExamplesHelpFormatter,
        epilog="examples:\n  urbaneye db upgrade\n  urbaneye db current\n",
    )
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_sub.add_parser(
        "upgrade",
        help="apply Alembic migrations (default: to head)",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye db upgrade                            # URBANEYE_DATABASE_URL, else var/urbaneye.db\n"
            "  urbaneye db upgrade --database-url postgresql+psycopg://urbaneye@db/urbaneye\n"
            "  urbaneye db upgrade --revision 0009            # stop at a revision\n"
        ),
    )
    up.add_argument("--revision", default="head")
    up.add_argument("--database-url", default=None, help="default: URBANEYE_DATABASE_URL / SQLite file")
    up.set_defaults(func=cmd_db_upgrade)
    cur = db_sub.add_parser(
        "current",
        help="show the database's migration revision",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye db current                            # exits 1 while behind head\n"
            "  urbaneye db current --database-url postgresql+psycopg://urbaneye@db/urbaneye\n"
        ),
    )
    cur.add_argument("--database-url", default=None)
    cur.set_defaults(func=cmd_db_current)


def _add_audit(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser(
        "audit",
        help="audit log",
        formatter_class=ExamplesHelpFormatter,
        epilog="examples:\n  urbaneye audit verify\n  urbaneye audit checkpoint\n",
    )
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    ver = audit_sub.add_parser(
        "verify",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye audit verify                          # exits 1 naming each tampered row or object\n"
            "  urbaneye audit verify --skip-evidence          # the chain only, not every evidence SHA-256\n"
            "  urbaneye audit verify --database-url postgresql+psycopg://urbaneye@db/urbaneye\n"
        ),
        help="check the audit chain (hashes, keyed MACs), its anchors (head file, newest signed checkpoint), "
        "the covered rows against it, and every evidence object's SHA-256; exits 1 naming each tamper",
    )
    ver.add_argument("--database-url", default=None)
    ver.add_argument("--skip-evidence", action="store_true", help="do not read the evidence objects back")
    ver.add_argument(
        "--head-file",
        type=Path,
        action="append",
        default=None,
        help="head file(s) to check (repeat for each machine's; default: this machine's for the database)",
    )
    ver.set_defaults(func=cmd_audit_verify)
    cp = audit_sub.add_parser(
        "checkpoint",
        help="sign the audit chain's head and write it to the object store (and the log) now",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye audit checkpoint                      # the relay also does it every interval\n"
            "  urbaneye audit checkpoint --database-url postgresql+psycopg://urbaneye@db/urbaneye\n"
        ),
    )
    cp.add_argument("--database-url", default=None)
    cp.set_defaults(func=cmd_audit_checkpoint)


def _add_worker_and_relay(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser(
        "worker",
        help="start a Celery worker for some queues",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye worker --queues cases,hotline         # needs URBANEYE_BROKER_URL=redis://...\n"
            "  urbaneye worker --queues training --concurrency 1 --pool solo\n"
        ),
    )
    worker.add_argument(
        "--queues", default="cases,hotline", help="comma-separated: cases,hotline,training,default"
    )
    worker.add_argument("--concurrency", type=int, default=2)
    worker.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(func=cmd_worker)

    relay = sub.add_parser(
        "relay",
        help="re-send spooled violations and dispatch the hotline outbox, forever",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye relay                                 # runs until stopped\n"
            "  urbaneye relay --once                          # one round, then exit\n"
        ),
    )
    relay.add_argument("--once", action="store_true", help="one round, then exit")
    relay.set_defaults(func=cmd_relay)


def _add_bench_cases(sub: argparse._SubParsersAction) -> None:
    # streams.cli may own `bench` already (stream benchmarks): add `cases` under it instead of clashing.
    bench = sub.choices.get("bench") or sub.add_parser("bench", help="benchmarks")
    bench_sub = next((a for a in bench._actions if isinstance(a, argparse._SubParsersAction)), None)
    if bench_sub is None:
        bench_sub = bench.add_subparsers(dest="bench_command", metavar="WHAT")
    bc = bench_sub.add_parser(
        "cases",
        help="violation event -> case row with uploaded evidence: latency",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye bench cases --json --moto --spawn-worker --n 60\n"
            "  urbaneye bench cases --json --scenario s3_hang --n 100   # S3 frozen; target p95 <= 2 s\n"
        ),
    )
    bc.add_argument("--n", type=int, default=40, help="violations to submit")
    bc.add_argument("--interval-s", type=float, default=0.25, help="gap between submissions")
    bc.add_argument(
        "--spawn-worker", action="store_true", help="start a Celery worker subprocess for the run"
    )
    bc.add_argument("--moto", action="store_true", help="start a moto S3 server in-process (no MinIO needed)")
    bc.add_argument(
        "--scenario",
        choices=["normal", "s3_hang"],
        default="normal",
        help="s3_hang: S3 frozen behind a proxy; event -> case row p95 (target <= 2 s); implies --moto --spawn-worker",
    )
    bc.add_argument("--json", action="store_true", help="print the result as JSON")
    bc.set_defaults(func=cmd_bench_cases)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from urbaneye.db.migrate import upgrade

    rev = upgrade(args.database_url, args.revision)
    print(f"database at revision {rev}")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    from urbaneye.db.migrate import current_revision, head_revision

    rev = current_revision(args.database_url)
    head = head_revision()
    print(f"current {rev or '(empty)'}; head {head}")
    return 0 if rev == head else 1


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from urbaneye.audit_verify import verify_all, verify_evidence
    from urbaneye.db.session import session_factory
    from urbaneye.settings import get_settings
    from urbaneye.storage import get_store

    session = session_factory(args.database_url or get_settings().db_url)()
    store = get_store()
    try:
        result = verify_all(session, store, args.head_file)
        for path, anchors in result.head_files:
            print(f"head file {path}: {anchors} anchors checked")
        problems = result.problems
        print(f"audit chain: {result.rows} rows checked, {len(problems)} problems")
        for p in problems:
            print(f"BROKEN {p}", file=sys.stderr)
        ev_problems: list = []
        if not args.skip_evidence:
            count, ev_problems = verify_evidence(session, store)
            print(f"evidence: {count} objects read back, {len(ev_problems)} problems")
            for p in ev_problems:
                print(f"BROKEN {p}", file=sys.stderr)
    finally:
        session.close()
    return 1 if problems or ev_problems else 0


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    from urbaneye.audit_checkpoints import write_checkpoint
    from urbaneye.db.session import session_factory
    from urbaneye.settings import get_settings
    from urbaneye.storage import get_store

    with session_factory(args.database_url or get_settings().db_url)() as session:
        cp = write_checkpoint(session, get_store())
    if cp is None:
        print("audit checkpoint: the head has not moved since the last one (or the chain is empty)")
    else:
        print(f"audit checkpoint {cp.seq}: head id={cp.head_id} hash={cp.head_hash} rows={cp.rows}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from urbaneye.celery_app import Queue, app

    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    known = {q.value for q in Queue}
    bad = [q for q in queues if q not in known]
    if bad:
        print(f"urbaneye worker: unknown queue(s) {bad}; use {sorted(known)}", file=sys.stderr)
        return 2
    if app.conf.task_always_eager:
        print(
            "urbaneye worker: URBANEYE_BROKER_URL is memory:// (embedded, tasks run in-process); "
            "set it to redis://... to run a separate worker",
            file=sys.stderr,
        )
        return 2
    _prepare_store()
    app.worker_main(
        [
            "worker",
            "-Q",
            ",".join(queues),
            "-c",
            str(args.concurrency),
            "-P",
            args.pool,
            "--loglevel",
            args.loglevel,
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0


def _prepare_store() -> None:
    import logging

    from urbaneye.storage import EvidenceStoreUnavailable, get_store

    try:
        get_store().ensure_ready()
    except EvidenceStoreUnavailable as exc:  # not fatal: uploads retry, evidence waits in the spool
        logging.getLogger(__name__).warning("evidence store not ready at start-up: %s", exc)


def cmd_relay(args: argparse.Namespace) -> int:
    import logging
    import time

    from urbaneye.audit_checkpoints import CheckpointThread
    from urbaneye.cases.handoff import Handoff
    from urbaneye.hotline.relay import dispatch_due_outbox
    from urbaneye.settings import get_settings
    from urbaneye.storage import get_store

    log = logging.getLogger("urbaneye.relay")
    s = get_settings()
    handoff = Handoff()
    prune_at = 0.0
    # the relay runs once per deployment: it also anchors the audit chain in the object store
    checkpoints = CheckpointThread(s.db_url, get_store(), s.audit_checkpoint_interval_s)
    checkpoint_at = 0.0
    while True:
        try:
            if time.monotonic() >= checkpoint_at:
                checkpoints.once()  # never raises; a down store is retried next interval
                checkpoint_at = time.monotonic() + s.audit_checkpoint_interval_s
            spooled = handoff.relay_once()
            pushed = dispatch_due_outbox()
            if spooled or pushed:
                log.info("relay: %d spool items re-sent, %d outbox rows dispatched", spooled, pushed)
            if time.monotonic() > prune_at:
                handoff.spool.prune_done()
                prune_at = time.monotonic() + 3600
        except Exception:  # database or broker down: the next round retries
            log.exception("relay round failed")
            if args.once:
                return 1
        if args.once:
            return 0
        time.sleep(s.relay_interval_s)


def cmd_bench_cases(args: argparse.Namespace) -> int:
    import json

    from urbaneye.cases.bench import run_bench

    result = run_bench(
        n=args.n,
        interval_s=args.interval_s,
        spawn_worker=args.spawn_worker,
        moto=args.moto,
        scenario=args.scenario,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['n']} violations: p50 {result['p50_s']:.3f}s  p95 {result['p95_s']:.3f}s  "
            f"max {result['max_s']:.3f}s  lost {result['lost']}  duplicated {result['duplicated']}"
        )
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1
