"""``autotag providers``: the registered providers present in this installation."""

from __future__ import annotations

import argparse
import json
from typing import Any

from autotag.providers import available
from autotag.providers.base import Provider


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("providers", help="list the providers and their capabilities")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON document listing every provider")
    output.add_argument("--markdown", action="store_true", help="the README's provider table")
    parser.set_defaults(handler=list_providers)


def describe(provider: type[Provider]) -> dict[str, Any]:
    capabilities = provider.capabilities
    constraints = provider.constraints
    return {
        "name": provider.name,
        "needs_network": capabilities.needs_network,
        "auth": capabilities.auth,
        "input_forms": [form.value for form in capabilities.input_forms],
        "languages": list(capabilities.languages) if capabilities.languages else ["en"],
        "confidences": capabilities.confidences,
        "boxes": capabilities.boxes,
        "captions": capabilities.captions,
        "classification": capabilities.classification,
        "prompt": capabilities.prompt,
        "rate_limit": capabilities.rate_limit,
        "limits": constraints.model_dump(mode="json", exclude_none=True, exclude={"formats"})
        | {"formats": sorted(f.value for f in constraints.formats)},
        "default_endpoint": provider.default_endpoint,
    }


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


def _languages(languages: list[str]) -> str:
    return ",".join(languages) if len(languages) <= 4 else f"{','.join(languages[:3])},+{len(languages) - 3}"


def _size(limit: int) -> str:
    return f"{limit / 1_000_000:g} MB" if limit % 100_000 == 0 else f"{limit / (1024 * 1024):g} MiB"


def _limits(limits: dict[str, Any]) -> str:
    parts = []
    if "max_bytes" in limits:
        parts.append(_size(limits["max_bytes"]) + (" (base64)" if limits.get("base64_counts") else ""))
    if "max_side" in limits:
        parts.append(f"≤ {limits['max_side']} px")
    if "min_side" in limits:
        parts.append(f"≥ {limits['min_side']} px")
    parts.append("/".join(f.upper() for f in limits["formats"]))
    return ", ".join(parts)


def markdown_table(described: list[dict[str, Any]]) -> str:
    """Provider x (input forms, languages, confidence, boxes, captions, classification, limits, auth)."""
    header = (
        "provider",
        "input forms",
        "languages",
        "confidence",
        "boxes",
        "captions",
        "classification",
        "limits",
        "auth",
        "rate limit",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for d in described:
        cells = (
            f"`{d['name']}`",
            ", ".join(d["input_forms"]),
            ", ".join(d["languages"]),
            "0..1" if d["confidences"] else "none",
            _yes(d["boxes"]),
            "title + description" if d["captions"] else "-",
            "choices (+ prompt)" if d["classification"] else ("prompt" if d["prompt"] else "-"),
            _limits(d["limits"]),
            d["auth"],
            d["rate_limit"] or "-",
        )
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def list_providers(args: argparse.Namespace) -> int:
    described = [describe(provider) for provider in available()]
    if args.json:
        print(json.dumps({"providers": described}, indent=2))
        return 0
    if args.markdown:
        print(markdown_table(described))
        return 0
    header = ("PROVIDER", "NETWORK", "AUTH", "INPUT", "LANGUAGES", "CONF", "BOXES", "CAPTION", "CLASSIFY")
    rows = [header] + [
        (
            d["name"],
            _yes(d["needs_network"]),
            d["auth"],
            ",".join(d["input_forms"]),
            _languages(d["languages"]),
            _yes(d["confidences"]),
            _yes(d["boxes"]),
            _yes(d["captions"]),
            _yes(d["classification"]),
        )
        for d in described
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0
