"""The README's provider table is generated from the registry; this keeps the two in step."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest
from autotag.cli import build_parser
from autotag.cli.providers import describe, markdown_table
from autotag.providers import available

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_provider_table_matches_the_registry():
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- providers:start[^>]*-->\n(.*?)\n<!-- providers:end -->", text, re.S)
    assert match, "README lost its provider table markers"
    expected = markdown_table([describe(p) for p in available()])
    assert match.group(1).strip() == expected, "regenerate with: uv run autotag providers --markdown"
    assert expected.count("\n") - 1 == len(list(available())) == 9


# --- Every documented `autotag` command exists, with the flags it is shown with ------------------

DOCS = [README, *sorted((README.parent / "docs").glob("*.md"))]
PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.|…")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


COMMAND = re.compile(r"^\s*(?:\$ |.*# or: )?(?:uv run )?autotag ((?:-v )?[a-z].*)$")


def _command(line: str) -> str | None:
    match = COMMAND.match(line)
    if not match:
        return None
    if re.match(r"\S+ \S+:(\s|$)", match.group(1)):
        return None  # output shown in a block ("autotag synth failed: ..."), not a command
    command = re.sub(r"\s+#\s.*$", "", match.group(1))  # a trailing comment
    return re.sub(r"\s+[>|]\s.*$", "", command).strip()  # a redirection or a pipe


def documented_commands() -> list[tuple[str, str, bool]]:
    """(file, the words after `autotag`, shown as a whole command line) for every autotag command
    in the docs' code blocks and inline code."""
    found: list[tuple[str, str, bool]] = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        fenced = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
        for block in fenced:
            for line in block.replace("\\\n", " ").splitlines():
                if command := _command(line):
                    found.append((path.name, command, True))
        for inline in re.findall(r"`([^`\n]+)`", text):
            if command := _command(inline):
                found.append((path.name, command, False))
    return found


def test_the_docs_show_autotag_commands():
    commands = {c.split()[0] for _, c, _ in documented_commands()}
    assert {"tag", "providers", "config", "local", "backfill", "redrive", "search", "show"} <= commands


@pytest.mark.parametrize(("doc", "command", "whole_line"), documented_commands())
def test_documented_commands_and_flags_exist(doc, command, whole_line):
    parser = build_parser()
    words = command.replace("[", " ").replace("]", " ").split()
    if words[0] == "-v":
        words = words[1:]
    subcommands = _subcommands(parser)
    assert words[0] in subcommands, f"{doc}: `autotag {words[0]}` is not a command"
    parser = subcommands[words[0]]
    if (nested := _subcommands(parser)) and len(words) > 1:
        assert words[1] in nested, f"{doc}: `autotag {words[0]} {words[1]}` is not a command"
        parser = nested[words[1]]
    flags = {w.split("=")[0] for w in words if w.startswith("-") and w != "-"}
    unknown = flags - _options(parser) - {"-h", "--help"}
    assert not unknown, f"{doc}: `autotag {command}` shows flags the CLI does not have: {sorted(unknown)}"
    if whole_line and not PLACEHOLDER.search(command) and "[" not in command:
        # A concrete command line parses as written.
        try:
            build_parser().parse_args(shlex.split(command))
        except SystemExit as exit_:
            raise AssertionError(f"{doc}: `autotag {command}` does not parse") from exit_


def test_readme_states_the_local_stack_defaults():
    text = README.read_text(encoding="utf-8")
    local = _subcommands(build_parser())["local"]
    defaults = {a.dest: a.default for a in local._actions}
    assert f"`--aws-port` (default {defaults['aws_port']})" in text
    assert f"`--api-port` (default {defaults['api_port']})" in text
    assert (
        f"uv run autotag local [--aws-port {defaults['aws_port']}] [--api-port {defaults['api_port']}]"
        in text
    )
    assert f"http://127.0.0.1:{defaults['api_port']}/prod/v1/tags" in text
    assert f"http://127.0.0.1:{defaults['aws_port']} " in text


def test_readme_make_verbs_exist():
    makefile = (README.parent / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    used = set(re.findall(r"`make ([a-z][a-z-]*)`", README.read_text(encoding="utf-8")))
    used |= set(re.findall(r"^make ([a-z][a-z-]*)", README.read_text(encoding="utf-8"), re.M))
    assert used
    assert used <= targets, sorted(used - targets)
