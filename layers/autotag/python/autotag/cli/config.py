"""``autotag config``: the configuration's JSON Schema, and checking a config file.

``validate`` takes both kinds of file the project reads: a tagging config (:class:`AutotagConfig`,
what ``autotag tag --config`` and the functions read) and a deployment config
(:class:`~autotag.deploy.config.DeploymentConfig`, what ``autotag local`` and the CDK app read, with
the tagging config under ``[tagging]`` or in ``tagging_file``). The two share no top-level key, so
the file's own keys say which it is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from autotag.config import config_json_schema, load_config_file, read_config_file
from autotag.errors import ConfigError

DEPLOYMENT_ONLY_KEYS = frozenset({"tagging_file"})
"""Besides :class:`DeploymentConfig`'s fields: keys only a deployment config has."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("config", help="configuration schema and validation")
    commands = parser.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)

    schema = commands.add_parser("schema", help="print the configuration's JSON Schema")
    schema.set_defaults(handler=print_schema)

    validate = commands.add_parser(
        "validate",
        help="check a TOML or JSON config file (tagging or deployment config)",
        description="Check a tagging config (as `autotag tag --config` reads) or a deployment config "
        "(as `autotag local --config` and the CDK app read, e.g. config/default.toml).",
    )
    validate.add_argument("file", metavar="FILE")
    validate.add_argument("--json", action="store_true", help="print the effective config as JSON")
    validate.set_defaults(handler=validate_file)


def print_schema(args: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2))
    return 0


def is_deployment_config(path: str | Path) -> bool:
    """Whether the file's top-level keys are a deployment config's. Unreadable or unparsable files
    are left to the loader, which reports why."""
    try:
        data = read_config_file(path)
    except ConfigError:
        return False
    from autotag.deploy.config import DeploymentConfig

    keys = frozenset(DeploymentConfig.model_fields) | DEPLOYMENT_ONLY_KEYS
    return isinstance(data, dict) and not keys.isdisjoint(data)


def validate_file(args: argparse.Namespace) -> int:
    if is_deployment_config(args.file):
        from autotag.deploy.config import load_deployment_config

        deployment = load_deployment_config(args.file)
        tagging = deployment.tagging
        if args.json:
            print(deployment.model_dump_json(indent=2))
            return 0
        kind = f"deployment config, stack {deployment.stack_name}; "
    else:
        tagging = load_config_file(args.file)
        if args.json:
            print(tagging.model_dump_json(indent=2))
            return 0
        kind = ""
    providers = ", ".join(p.key for p in tagging.providers)
    print(f"{args.file}: ok ({kind}{len(tagging.providers)} provider(s): {providers})")
    return 0
