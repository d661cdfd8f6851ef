"""The ``autotag`` command line.

Each command group lives in its own module exposing ``register(subparsers)``, which adds its
parser(s) and sets ``handler`` (a function of the parsed arguments returning the exit status).
Adding a command group is one line in :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from autotag.errors import AutotagError

COMMAND_MODULES: list[str] = [
    "autotag.cli.tag",
    "autotag.cli.providers",
    "autotag.cli.config",
    "autotag.cli.local",
    "autotag.cli.ops",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
DEBUG_ENV = "AUTOTAG_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autotag", description="Tag images with one or several providers.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def report_error(error: AutotagError, subject: str | None = None) -> None:
    """The one-line error format: ``autotag: error: <code>: [<subject>: ]<message>``."""
    message = _one_line(str(error))
    prefix = f"{subject}: " if subject and subject not in message else ""
    print(f"autotag: error: {error.code}: {prefix}{message}", file=sys.stderr)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _configure_logging(verbose: bool) -> Callable[[], None]:
    """Returns what puts the package logger back as it was (see :func:`main`)."""
    # The package logs through Powertools loggers named "autotag..."; the CLI reports failures
    # itself, so their records only reach the terminal when asked for.
    package_logger = logging.getLogger("autotag")
    handlers, propagate, level = list(package_logger.handlers), package_logger.propagate, package_logger.level

    def restore() -> None:
        package_logger.handlers[:] = handlers
        package_logger.propagate = propagate
        package_logger.setLevel(level)

    if verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
        package_logger.setLevel(logging.INFO)
    elif not package_logger.handlers:
        package_logger.addHandler(logging.NullHandler())
    package_logger.propagate = verbose
    return restore


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # The command modules import pydantic, boto3, Pillow...: most of start-up happens here.
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        # Ctrl-C before any work started: nothing to report, no traceback.
        return EXIT_INTERRUPTED
    restore_logging = _configure_logging(args.verbose)
    try:
        return _run(args)
    finally:
        # In-process callers (tests, embedding) get the package logger back: a NullHandler left
        # first on "autotag" would stand where a later Powertools Logger expects its own handler.
        restore_logging()


def _run(args: argparse.Namespace) -> int:
    try:
        status: int = args.handler(args)
    except AutotagError as error:
        report_error(error)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("autotag: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if os.environ.get(DEBUG_ENV):
            raise
        print(
            f"autotag: error: internal_error: {type(error).__name__}: {_one_line(str(error))}"
            f" (set {DEBUG_ENV}=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return status
