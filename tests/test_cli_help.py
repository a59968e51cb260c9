"""Every ``urbaneye`` command's ``--help`` ends with examples (issue 18 item 6), and each example is a
command line the parser accepts: a new command without examples, or an example whose options went stale,
fails here."""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex

import pytest

from urbaneye.cli import build_parser


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """``(("models", "promote"), parser)`` for every command and command group below ``parser``."""
    found = [(path, parser)] if path else []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(build_parser())


def _examples(help_text: str) -> list[str]:
    """The command lines of the ``examples:`` section, without their ``# ...`` comments."""
    _, sep, section = help_text.partition("\nexamples:\n")
    assert sep, "no 'examples:' section"
    return [shlex.split(line, comments=True) for line in section.splitlines() if line.strip()]


def test_walk_finds_the_commands() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"run", "stream-worker", "db upgrade", "models promote", "bench cases", "users token"} <= names


@pytest.mark.parametrize("path, parser", COMMANDS, ids=[" ".join(path) for path, _ in COMMANDS])
def test_help_ends_with_examples_that_parse(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    examples = _examples(parser.format_help())
    assert examples, f"urbaneye {' '.join(path)} --help: the examples section is empty"
    for argv in examples:
        assert argv[0] == "urbaneye", f"example {argv} does not start with 'urbaneye'"
        assert tuple(argv[1 : 1 + len(path)]) == path, (
            f"urbaneye {' '.join(path)}: example {argv} runs another command"
        )
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):
                args = build_parser().parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"example {shlex.join(argv)} is refused: {errors.getvalue().strip()}")
        assert callable(getattr(args, "func", None)), f"example {shlex.join(argv)} names no command to run"
