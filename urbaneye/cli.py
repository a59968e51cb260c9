"""``urbaneye`` command line. Each area owns its commands in a light ``cli.py`` (heavy imports stay
inside the handlers) exposing ``add_commands(subparsers)``; handlers are ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pydantic import ValidationError

from vision.config import ConfigError

#: Modules that add commands, in help order.
COMMAND_MODULES = [
    "app.cli",  # run (the composition root: workers + API + demo)
    "streams.cli",  # stream-worker, replay
    "tools.cli",  # eval-events, bench
    "api.cli",  # serve, users
    "urbaneye.ops_cli",  # db, audit, worker
    "vision.cli",  # rules-replay, score-events
    "datasets.cli",  # synth, dataset
    "models.cli",  # train, eval
    "models.retrain_cli",  # dataset build, retrain, models list
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="urbaneye", description="UrbanEye city-management video capture")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        # imported by name: an area left out of a build (ModuleNotFoundError) only loses its commands
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # area not installed in this build
            raise
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # one INFO line per HTTP request (URLs with tickets or signatures): only with -v
        logging.getLogger("httpx").setLevel(logging.WARNING)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"urbaneye: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        # e.g. production refusing a weak secret: one line per setting, naming it and the fix
        lines = [str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()]
        print("urbaneye: settings refused:\n" + "\n".join(lines), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
