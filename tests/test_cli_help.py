"""Every sub-command's `--help` is complete and names what the code accepts.

The parser is built in-process (frlite.cli.build_parser) and walked: an argument without help
text, or a choice list in the help that lags behind the code (convert said "dense and idct
form" after factorized existed), fails here.
"""
from __future__ import annotations

import argparse

import pytest

from frlite.cli import build_parser
from frlite.converter.passes.context import MODES, PRECISIONS, TARGETS
from frlite.runtimes.parity_run import RUNTIME_VARIANTS


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _subcommand_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {c.dest: c.help or "" for c in action._choices_actions}


PARSER = build_parser()
SUBS = _subparsers(PARSER)


def test_every_subcommand_is_walked_and_has_help() -> None:
    assert set(SUBS) == {"inspect", "pack", "convert", "parity", "bench", "evaluate"}
    assert all(text.strip() for text in _subcommand_help(PARSER).values()), _subcommand_help(PARSER)


@pytest.mark.parametrize("name", [None, *sorted(SUBS)])
def test_every_argument_has_help(name: str | None) -> None:
    parser = PARSER if name is None else SUBS[name]
    missing = [a.option_strings[0] if a.option_strings else a.dest for a in parser._actions
               if not isinstance(a, argparse._SubParsersAction) and (not a.help or a.help == argparse.SUPPRESS)]
    assert not missing, f"frlite {name or ''}: arguments without help text: {missing}"
    parser.format_help()  # renders (a bad % in a help string fails here)


def test_help_names_every_choice_the_code_accepts() -> None:
    convert = SUBS["convert"].format_help()
    for word in (*MODES, *TARGETS, *PRECISIONS):
        assert word in convert, f"convert --help does not name {word}"
    assert "dense and idct form" not in convert
    summary = _subcommand_help(PARSER)["convert"]
    assert all(mode in summary for mode in MODES), summary
    variants = " ".join(SUBS["parity"].format_help().split())
    for vs in RUNTIME_VARIANTS.values():
        for v in vs:
            assert v in variants, f"parity --help does not name variant {v}"


@pytest.mark.parametrize("name", ["parity", "bench", "convert"])
def test_long_commands_take_quiet(name: str) -> None:
    assert "--quiet" in SUBS[name].format_help()
