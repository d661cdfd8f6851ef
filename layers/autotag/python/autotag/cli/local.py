"""``autotag local``: the whole stack on this machine, in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from autotag.deploy.config import DEFAULT_DEPLOY_CONFIG, DEPLOY_CONFIG_ENV
from autotag.deploy.resolve import resolve_config
from autotag.errors import ConfigError
from autotag.local.stack import (
    DEFAULT_API_PORT,
    DEFAULT_AWS_PORT,
    LocalOptions,
    LocalStack,
)
from autotag.local.stack_output import banner
from autotag.local.state import DEFAULT_STATE_PATH


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "local",
        help="run the whole stack locally (AWS emulator, functions, API) until Ctrl-C",
        description=(
            "Start the AWS emulator on 127.0.0.1 with the resources the CDK stack defines, drive the "
            "real functions from their event sources, and serve the API. Runs until Ctrl-C."
        ),
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"deployment config (TOML/JSON; a plain tagging config also works); default: "
        f"${DEPLOY_CONFIG_ENV}, else {DEFAULT_DEPLOY_CONFIG}",
    )
    parser.add_argument("--aws-port", type=int, default=DEFAULT_AWS_PORT, help="emulator port (0: any free)")
    parser.add_argument("--api-port", type=int, default=DEFAULT_API_PORT, help="API port (0: any free)")
    parser.add_argument(
        "--state", type=Path, default=DEFAULT_STATE_PATH, metavar="PATH", help="state file for other commands"
    )
    parser.add_argument("--api-key", help="API key to accept (default: a new random one)")
    parser.add_argument("--workers", type=int, default=2, help="concurrent on_upload invocations (default 2)")
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the functions' Powertools log level (default: the config's)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="hide the functions' JSON logs (same as --log-level ERROR)"
    )
    parser.add_argument("--metrics", action="store_true", help="print the functions' EMF metrics")
    parser.add_argument(
        "--secrets",
        metavar="FILE",
        help="JSON object: provider id -> its credentials JSON, stored as the local secrets "
        "(default: AUTOTAG_SECRET_<PROVIDER> environment variables)",
    )
    parser.set_defaults(handler=run_local)


def load_secrets(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read secrets file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"secrets file {path} must hold a JSON object (provider id -> credentials)")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


def run_local(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    config, config_path = resolve_config(args.config)
    options = LocalOptions(
        config=config,
        config_path=config_path,
        aws_port=args.aws_port,
        api_port=args.api_port,
        state_path=args.state,
        api_key=args.api_key,
        upload_workers=args.workers,
        function_log_level="ERROR" if args.quiet else args.log_level,
        metrics=args.metrics,
        secret_values=load_secrets(args.secrets),
    )
    stack = LocalStack(options)
    return stack.run(on_ready=lambda state: stack.emit(banner(state, options)))
