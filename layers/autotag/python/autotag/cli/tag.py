"""``autotag tag IMAGE...``: tag files, https URLs or S3 objects and print the result.

Every image is processed and reported; the exit status is non-zero if any of them failed. A failure
prints one line, ``autotag: error: <code>: <image>: <message>``, on stderr.

Each image gets a deadline of the slowest selected provider's ``timeout_seconds x max_attempts``
(at most :data:`MAX_DEADLINE_SECONDS`), so in-process retries have room to run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from autotag.cli import EXIT_FAILED, EXIT_OK, report_error
from autotag.config import AutotagConfig, ProviderConfig, load_config_file
from autotag.credentials import Credentials
from autotag.errors import AutotagError, BadInputError, ImageTooLargeError, NotFoundError, UnsafeUrlError
from autotag.fanout import Tagger
from autotag.image import S3Location, SourceImage, split_s3_url
from autotag.intake.checks import inspect_image
from autotag.intake.source import load_image
from autotag.models import TagOptions, TagResult
from autotag.providers import provider_class, provider_names
from autotag.providers.base import ProviderContext
from autotag.providers.http import make_client
from autotag.retry import Deadline

MAX_DEADLINE_SECONDS = 300.0
FETCH_TIMEOUT_SECONDS = 30.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tag",
        help="tag images (files, https URLs, s3://bucket/key)",
        description="Tag images with the configured providers (default: the offline vision model "
        "'efficientnet' plus 'basic' colour/orientation/camera facts).",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="file path, https URL or s3://bucket/key")
    parser.add_argument(
        "--provider",
        "-p",
        action="append",
        dest="providers",
        metavar="NAME",
        help="provider id to run (repeatable; a registered provider missing from the config is added "
        "with defaults)",
    )
    parser.add_argument("--lang", type=_language, help="language of the tag names, e.g. en, de")
    parser.add_argument("--min-confidence", type=_confidence, metavar="F", help="drop tags below F (0..1)")
    parser.add_argument("--max-tags", type=_max_tags, metavar="N", help="keep at most N tags per provider")
    parser.add_argument("--config", "-c", metavar="FILE", help="TOML or JSON config file")
    parser.add_argument("--json", action="store_true", help="one JSON document (one line) per image")
    parser.set_defaults(handler=run)


def _in_range(convert: Callable[[str], Any], noun: str, low: int, high: int) -> Callable[[str], Any]:
    """An argparse type: `convert` the text, refusing what is not `noun` or outside low..high."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {text}")
        return value

    return parse


_confidence = _in_range(float, "a number", 0, 1)
_max_tags = _in_range(int, "an integer", 0, 1000)


def _language(text: str) -> str:
    if not 2 <= len(text) <= 10:
        raise argparse.ArgumentTypeError(f"not a language code: {text!r}")
    return text


# --- Configuration -------------------------------------------------------------------------------


def with_requested_providers(config: AutotagConfig, requested: list[str] | None) -> AutotagConfig:
    """`config` plus a default entry for each requested registered provider it does not configure."""
    added: list[ProviderConfig] = []
    for key in dict.fromkeys(requested or ()):
        if config.provider(key) is not None:
            continue
        if key not in provider_names():
            configured = ", ".join(p.key for p in config.providers)
            raise BadInputError(
                f"unknown provider {key!r} (configured: {configured}; registered: "
                f"{', '.join(provider_names())})",
                code="unknown_provider",
            )
        added.append(ProviderConfig(name=key))
    if not added:
        return config
    return AutotagConfig.model_validate(
        config.model_dump()
        | {"providers": [*config.model_dump()["providers"], *(p.model_dump() for p in added)]}
    )


def _check_installed(config: AutotagConfig, keys: list[str]) -> None:
    for key in keys:
        provider = config.provider(key)
        assert provider is not None
        try:
            provider_class(provider.name)
        except ModuleNotFoundError:
            raise BadInputError(
                f"provider {provider.name!r} is registered but not available in this installation",
                code="provider_unavailable",
            ) from None


def _deadline_seconds(config: AutotagConfig, keys: list[str]) -> float:
    budgets = [p.timeout_seconds * p.max_attempts for key in keys if (p := config.provider(key)) is not None]
    return min(MAX_DEADLINE_SECONDS, max(budgets, default=30.0))


# --- Reading images ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedImage:
    label: str
    source: SourceImage
    s3: S3Location | None = None


def read_image(argument: str, config: AutotagConfig) -> LoadedImage:
    scheme = urlsplit(argument).scheme.lower() if "://" in argument else ""
    if scheme == "s3":
        location = parse_s3_uri(argument)
        return LoadedImage(argument, inspect_image(read_s3(location, config), limits=config.limits), location)
    if scheme == "https":
        return LoadedImage(argument, inspect_image(fetch_url(argument, config), limits=config.limits))
    if scheme:
        raise UnsafeUrlError(f"only https:// and s3:// URLs are accepted, not {scheme}://")
    return LoadedImage(argument, load_image(Path(argument), limits=config.limits))


def fetch_url(url: str, config: AutotagConfig) -> bytes:
    try:
        fetch = importlib.import_module("autotag.fetch")
    except ModuleNotFoundError:
        raise BadInputError(
            "fetching https URLs is not available in this installation (autotag.fetch is missing)",
            code="fetch_unavailable",
        ) from None
    data: bytes = fetch.fetch_image_url(url, max_bytes=config.limits.max_bytes, timeout=FETCH_TIMEOUT_SECONDS)
    return data


def parse_s3_uri(uri: str) -> S3Location:
    parts = split_s3_url(uri)
    if parts is None or not parts[1]:
        raise BadInputError(f"not an s3://bucket/key URI: {uri}", code="bad_s3_uri")
    return S3Location(bucket=parts[0], key=parts[1])


def read_s3(location: S3Location, config: AutotagConfig) -> bytes:
    """GetObject through boto3's default session (it honours AWS_ENDPOINT_URL)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = boto3.client("s3").get_object(Bucket=location.bucket, Key=location.key)
        size = int(response.get("ContentLength") or 0)
        if size > config.limits.max_bytes:
            response["Body"].close()
            raise ImageTooLargeError(f"object is {size} bytes; the limit is {config.limits.max_bytes} bytes")
        data: bytes = response["Body"].read()
        return data
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
            raise NotFoundError(f"{location.uri} does not exist ({code})") from None
        raise BadInputError(f"cannot read {location.uri}: {code}", code="s3_error") from None
    except BotoCoreError as exc:
        raise BadInputError(f"cannot read {location.uri}: {exc}", code="s3_error") from None


# --- Output ---------------------------------------------------------------------------------------


def image_facts(image: LoadedImage) -> dict[str, Any]:
    source = image.source
    width, height = source.upright_size
    return {
        "path": image.label,
        "format": source.format.value,
        "content_type": source.content_type,
        "width": width,
        "height": height,
        "bytes": source.size,
        "orientation": source.orientation,
        "sha256": source.sha256,
    }


def json_document(image: LoadedImage, result: TagResult) -> str:
    document = {"image": image_facts(image), **result.model_dump(mode="json")}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def table(image: LoadedImage, result: TagResult) -> str:
    facts = image_facts(image)
    lines = [
        f"{facts['path']}  {facts['format'].upper()} {facts['width']}x{facts['height']}  "
        f"{facts['bytes']} bytes  sha256 {facts['sha256'][:16]}"
    ]
    if result.title:
        lines.append(f"  title: {result.title}")
    if result.description:
        lines.append(f"  description: {result.description}")
    if result.classification:
        c = result.classification
        confidence = f" ({c.confidence:.2f})" if c.confidence is not None else ""
        lines.append(f"  classification: {c.label}{confidence}")
    rows = [("TAG", "CONFIDENCE", "PROVIDERS")] + [
        (tag.name, "-" if tag.confidence is None else f"{tag.confidence:.2f}", ",".join(tag.sources))
        for tag in result.tags
    ]
    if result.tags:
        width = max(len(r[0]) for r in rows)
        lines += [f"  {name.ljust(width)}  {conf.rjust(10)}  {sources}" for name, conf, sources in rows]
    else:
        lines.append("  (no tags)")
    for failure in result.failed:
        lines.append(f"  failed: {failure.provider}: {failure.error_code}: {failure.error}")
    return "\n".join(lines)


# --- The command ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    config = load_config_file(args.config) if args.config else AutotagConfig()
    config = with_requested_providers(config, args.providers)
    options = TagOptions(
        providers=args.providers or None,
        lang=args.lang,
        min_confidence=args.min_confidence,
        max_tags=args.max_tags,
    )
    keys = list(dict.fromkeys(options.providers or config.default_provider_keys))
    _check_installed(config, keys)
    failures = asyncio.run(_tag_all(args.images, config, options, _deadline_seconds(config, keys), args.json))
    return EXIT_FAILED if failures else EXIT_OK


async def _tag_all(
    images: list[str], config: AutotagConfig, options: TagOptions, deadline_seconds: float, as_json: bool
) -> int:
    failures = 0
    async with make_client() as http:
        tagger = Tagger(config, ProviderContext(http=http, credentials=Credentials()))
        for index, argument in enumerate(images):
            try:
                image = await asyncio.to_thread(read_image, argument, config)
                result = await tagger.tag(
                    image.source, options, deadline=Deadline.after(deadline_seconds), s3=image.s3
                )
            except AutotagError as error:
                failures += 1
                report_error(error, argument)
                continue
            if as_json:
                print(json_document(image, result))
            else:
                print(("\n" if index else "") + table(image, result))
            sys.stdout.flush()
        for provider in tagger.select(options):
            await provider.aclose()
    return failures
