"""The provider registry. Adapters are imported on first use, so a cold start pays only for the
providers the configuration names."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

from autotag.errors import UnknownProviderError
from autotag.providers.base import Provider

_ADAPTERS: dict[str, str] = {
    "basic": "autotag.providers.basic:BasicProvider",
    "efficientnet": "autotag.providers.efficientnet:EfficientNetProvider",
    "imagedescriber": "autotag.providers.imagedescriber:ImageDescriberProvider",
    "coreviz": "autotag.providers.coreviz:CoreVizProvider",
    "pixlab": "autotag.providers.pixlab:PixLabProvider",
    "imagekit": "autotag.providers.imagekit:ImageKitProvider",
    "huawei": "autotag.providers.huawei.provider:HuaweiProvider",
    "rekognition": "autotag.providers.rekognition:RekognitionProvider",
    "google_vision": "autotag.providers.google_vision:GoogleVisionProvider",
}


def provider_names() -> tuple[str, ...]:
    return tuple(_ADAPTERS)


def provider_class(name: str) -> type[Provider]:
    target = _ADAPTERS.get(name)
    if target is None:
        known = ", ".join(sorted(_ADAPTERS))
        raise UnknownProviderError(f"unknown provider {name!r} (known: {known})")
    module_name, _, attribute = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attribute)
    assert issubclass(cls, Provider)
    return cls


def available() -> Iterator[type[Provider]]:
    """Every registered provider class whose module is present."""
    for name in _ADAPTERS:
        try:
            yield provider_class(name)
        except ModuleNotFoundError:
            continue
