"""The content-hash cache key: the image's SHA-256 and a fingerprint of what else decides a result."""

from __future__ import annotations

import hashlib
import json

from autotag.config import AutotagConfig
from autotag.models import TagOptions

CACHE_FORMAT = 1
"""Bump to invalidate every cached result (e.g. when the normalized model changes meaning)."""


def provider_fingerprint(config: AutotagConfig, options: TagOptions) -> str:
    """What, besides the bytes, decides a result: the selected providers' tagging settings, the
    default language and the request options (not timeouts, secrets or prices)."""
    keys = options.providers or list(config.default_provider_keys)
    providers: list[object] = []
    for key in dict.fromkeys(keys):
        provider = config.provider(key)
        providers.append(
            key
            if provider is None
            else provider.model_dump(
                mode="json",
                include={"name", "id", "endpoint", "min_confidence", "max_tags", "lang", "options"},
            )
        )
    material = {
        "format": CACHE_FORMAT,
        "providers": providers,
        "lang": config.lang,
        "options": options.fingerprint(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:32]


def cache_key(sha256: str, fingerprint: str) -> str:
    return hashlib.sha256(f"{sha256}:{fingerprint}".encode()).hexdigest()
