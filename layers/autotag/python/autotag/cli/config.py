"""``autotag config``: the configuration's JSON Schema, and checking a config file."""

from __future__ import annotations

import argparse
import json
from typing import Any

from autotag.config import config_json_schema, load_config_file


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("config", help="configuration schema and validation")
    commands = parser.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)

    schema = commands.add_parser("schema", help="print the configuration's JSON Schema")
    schema.set_defaults(handler=print_schema)

    validate = commands.add_parser("validate", help="check a TOML or JSON config file")
    validate.add_argument("file", metavar="FILE")
    validate.add_argument("--json", action="store_true", help="print the effective config as JSON")
    validate.set_defaults(handler=validate_file)


def print_schema(args: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2))
    return 0


def validate_file(args: argparse.Namespace) -> int:
    config = load_config_file(args.file)
    if args.json:
        print(config.model_dump_json(indent=2))
    else:
        providers = ", ".join(p.key for p in config.providers)
        print(f"{args.file}: ok ({len(config.providers)} provider(s): {providers})")
    return 0
