"""``urbaneye serve``, ``urbaneye users …`` and ``urbaneye bench-api``.

Imports of the app, the database and the benchmark stay inside the handlers: ``urbaneye.cli`` imports
every area's ``cli.py`` to build its help, and each command should load only what it runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from vision.cli import ExamplesHelpFormatter

#: Audit actor of user administration done on the server's command line.
CLI_ACTOR = "cli"


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the API and the reviewer UI (uvicorn)",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye serve                      # settings.host:settings.port (127.0.0.1:8000)\n"
            "  urbaneye serve --host 0.0.0.0 --port 8080\n"
            "  urbaneye serve --demo-users         # adds admin/admin-demo and demo/demo-review\n"
        ),
    )
    p.add_argument("--host", default=None, help="bind address (default: settings.host, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: settings.port, 8000)")
    p.add_argument(
        "--demo-users",
        action="store_true",
        help="create admin/admin-demo and demo/demo-review (refused in production)",
    )
    p.set_defaults(func=cmd_serve)
    _add_users(sub)
    _add_bench_api(sub)


def _add_users(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser(
        "users",
        help="manage API users",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye users create --username wang --role reviewer      # prompts for the password\n"
            "  urbaneye users list\n"
            "  urbaneye users token --username worker-1 --ttl-days 90     # a service user's token\n"
        ),
    ).add_subparsers(dest="users_command", metavar="ACTION")
    c = users.add_parser(
        "create",
        help="add a user",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye users create --username wang --role reviewer --display-name 王芳   # prompts for the password\n"
            "  urbaneye users create --username worker-1 --role service     # then: users token --username worker-1\n"
        ),
    )
    c.add_argument("--username", required=True)
    c.add_argument("--role", required=True, choices=["admin", "reviewer", "viewer", "service"])
    c.add_argument("--password", help="omit to be prompted (keeps it out of shell history)")
    c.add_argument("--display-name", default="")
    c.set_defaults(func=cmd_users_create)
    ls = users.add_parser(
        "list",
        help="list users",
        formatter_class=ExamplesHelpFormatter,
        epilog="examples:\n  urbaneye users list\n  urbaneye users list --json\n",
    )
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_users_list)
    t = users.add_parser(
        "token",
        help="print a service token for a worker's service user",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye users token --username worker-1                    # valid 30 days\n"
            "  urbaneye users token --username worker-1 --ttl-days 90\n"
        ),
    )
    t.add_argument("--username", required=True)
    t.add_argument("--ttl-days", type=float, default=30.0)
    t.set_defaults(func=cmd_users_token)


def _add_bench_api(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser(
        "bench-api",
        help="API latency under load: 100k cases, 50 concurrent reviewers",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye bench-api --json --think-s 5            # scratch database on the local PostgreSQL\n"
            "  urbaneye bench-api --json --think-s 5 --workers 2\n"
            "  urbaneye bench-api --cases 20000 --reviewers 20 --duration-s 40 --json\n"
        ),
    )
    b.add_argument(
        "--database-url", default="", help="PostgreSQL URL (default: a scratch database on the local server)"
    )
    b.add_argument("--cases", type=int, default=100_000)
    b.add_argument("--reviewers", type=int, default=50)
    b.add_argument(
        "--duration-s",
        type=float,
        default=40.0,
        help="load duration; 20 s runs are dominated by warm-up (connections, plans)",
    )
    b.add_argument(
        "--think-s", type=float, default=1.0, help="mean reviewer pause per case (0 = closed loop)"
    )
    b.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    b.set_defaults(func=cmd_bench_api)


def ensure_schema(url: str) -> None:
    """Bring the database to the current schema (the migrations)."""
    from urbaneye.db.migrate import upgrade

    upgrade(url)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app, install_log_masking
    from api.auth import DemoUsersRefused, ensure_demo_users, refuse_demo_users_in_production
    from urbaneye.db.session import session_scope
    from urbaneye.settings import get_settings

    settings = get_settings()
    if args.demo_users:
        try:
            refuse_demo_users_in_production(settings)
        except DemoUsersRefused as exc:
            print(f"urbaneye serve: {exc}", file=sys.stderr)
            return 2
    ensure_schema(settings.db_url)
    if args.demo_users:
        with session_scope(settings.db_url) as session:
            ensure_demo_users(session, settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level="info",
        # X-Forwarded-For is believed only from URBANEYE_TRUSTED_PROXIES (api.deps.get_client_address),
        # not from uvicorn's default of any local peer
        proxy_headers=False,
        # open review screens hold a live-queue stream (api/routes/live.py): stop waiting for them on shutdown
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    install_log_masking()
    server.run()
    return 0


def cmd_users_create(args: argparse.Namespace) -> int:
    from api.auth import create_user, prompt_password
    from urbaneye.audit import append_audit
    from urbaneye.db.session import session_scope
    from urbaneye.settings import get_settings

    settings = get_settings()
    ensure_schema(settings.db_url)
    try:
        password = args.password if args.password is not None else prompt_password()
        with session_scope(settings.db_url) as session:
            user = create_user(session, args.username, password, args.role, args.display_name)
            append_audit(
                session,
                CLI_ACTOR,
                "create_user",
                "user",
                user.id,
                detail={"username": user.username, "role": user.role},
            )
            print(f"created {user.role} '{user.username}' (id {user.id})")
    except ValueError as exc:
        print(f"urbaneye users create: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from urbaneye.db.models import User
    from urbaneye.db.session import session_scope
    from urbaneye.settings import get_settings

    with session_scope(get_settings().db_url) as session:
        users = session.scalars(select(User).order_by(User.username)).all()
        rows = [{"id": u.id, "username": u.username, "role": u.role, "active": u.is_active} for u in users]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for r in rows:
            print(
                f"{r['username']:<24} {r['role']:<9} {'active' if r['active'] else 'inactive':<8} {r['id']}"
            )
    return 0


def cmd_users_token(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from api.auth import issue_token
    from urbaneye.audit import append_audit
    from urbaneye.db.models import User
    from urbaneye.db.session import session_scope
    from urbaneye.settings import get_settings

    settings = get_settings()
    with session_scope(settings.db_url) as session:
        user = session.scalar(select(User).where(User.username == args.username))
        if user is None:
            print(
                f"urbaneye users token: no user '{args.username}'; create it with --role service",
                file=sys.stderr,
            )
            return 2
        try:
            issued = issue_token(user, settings, kind="service", ttl_s=int(args.ttl_days * 86400))
        except ValueError as exc:
            print(f"urbaneye users token: {exc}", file=sys.stderr)
            return 2
        append_audit(
            session,
            CLI_ACTOR,
            "issue_service_token",
            "user",
            user.id,
            detail={"username": user.username, "expires_at": issued.expires_at.isoformat()},
        )
    print(issued.token)
    return 0


def cmd_bench_api(args: argparse.Namespace) -> int:
    from api.bench import run_bench

    report = run_bench(
        database_url=args.database_url,
        cases=args.cases,
        reviewers=args.reviewers,
        duration_s=args.duration_s,
        think_s=args.think_s,
        workers=args.workers,
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, v in report["latency_ms"].items():
            print(
                f"{name:<8} n={v['n']:<6} p50={v['p50']:.1f} ms  p95={v['p95']:.1f} ms  (target ≤ {v['target_p95']} ms)"
            )
        print("PASS" if report["ok"] else "FAIL")
    return 0 if report["ok"] else 1
