"""The `efficientnet` provider over a tiny real ONNX model (tests/support/vision.py): options,
vocabulary policy, min_confidence/max_tags, model lookup and loading once."""

from __future__ import annotations

import asyncio
import io

import pytest
from autotag.config import AutotagConfig, ProviderConfig
from autotag.errors import ConfigError, ModelNotFoundError, ProviderBadInputError, ProviderError
from autotag.image import ImageFormat
from autotag.intake.fit import fit
from autotag.intake.source import load_image
from autotag.models import TagKind
from autotag.providers import provider_class
from autotag.providers.base import EffectiveOptions, ProviderRequest
from autotag.providers.efficientnet import EfficientNetProvider
from autotag.retry import Deadline
from autotag.vision import model as vision_model
from PIL import Image

from tests.support.tagging import offline_context, tag_image
from tests.support.vision import write_colour_model


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory):
    return write_colour_model(tmp_path_factory.mktemp("model") / "colour.onnx")


def make(options: dict | None = None, model_path=None, **config) -> EfficientNetProvider:
    merged = dict(options or {})
    if model_path is not None:
        merged["model_path"] = str(model_path)
    return EfficientNetProvider(
        ProviderConfig(name="efficientnet", options=merged, **config), offline_context()
    )


def picture(rgb: tuple[int, int, int], fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), rgb).save(buffer, format=fmt)
    return buffer.getvalue()


def test_registered_offline_keyless_and_a_default():
    assert provider_class("efficientnet") is EfficientNetProvider
    assert EfficientNetProvider.capabilities.needs_network is False
    assert EfficientNetProvider.capabilities.auth == "none"
    assert ImageFormat.JPEG in EfficientNetProvider.constraints.formats
    assert [p.name for p in AutotagConfig().providers] == ["efficientnet", "basic"]


def test_red_picture_is_a_tabby_and_a_cat(colour_model):
    result = tag_image(make(model_path=colour_model), picture((230, 20, 20)))
    tags = {t.name: t for t in result.tags}
    assert result.providers[0].provider == "efficientnet"
    assert result.providers[0].tag_count == len(result.tags)
    assert tags["tabby"].kind is TagKind.LABEL
    assert tags["tabby"].categories == ("animal",)
    assert tags["tabby"].parents[0] == "cat"
    assert tags["cat"].kind is TagKind.CONCEPT
    assert tags["cat"].confidence >= tags["tabby"].confidence
    assert tags["animal"].confidence >= tags["cat"].confidence
    assert "tench" not in tags
    confidences = [t.confidence for t in result.tags]
    assert confidences == sorted(confidences, reverse=True)


def test_blue_and_green(colour_model):
    blue = {t.name for t in tag_image(make(model_path=colour_model), picture((20, 20, 230))).tags}
    green = {t.name for t in tag_image(make(model_path=colour_model), picture((20, 230, 20), "PNG")).tags}
    assert {"tench", "fish", "animal"} <= blue
    assert {"daisy", "flower", "plant"} <= green
    assert "cat" not in blue | green


def test_min_confidence_and_max_tags(colour_model):
    provider = make(model_path=colour_model)
    everything = tag_image(provider, picture((230, 20, 20)), min_confidence=0.0).tags
    capped = tag_image(provider, picture((230, 20, 20)), max_tags=2).tags
    assert len(capped) == 2
    assert [t.name for t in capped] == [t.name for t in everything[:2]]
    strict = tag_image(provider, picture((230, 20, 20)), min_confidence=0.999).tags
    assert all(t.confidence >= 0.999 for t in strict)
    # Without min_confidence the provider's own floor (0.1) keeps the 997 unlikely classes out.
    default = tag_image(provider, picture((230, 20, 20))).tags
    assert all(t.confidence >= 0.1 for t in default)


def test_vocabulary_options(colour_model):
    options = {"rename": {"tabby": "cat:tabby", "animal": "animals"}, "deny": ["mammal"], "parents": True}
    tags = {t.name for t in tag_image(make(options, model_path=colour_model), picture((230, 20, 20))).tags}
    assert {"cat:tabby", "animals", "cat"} <= tags
    assert not {"tabby", "animal", "mammal"} & tags
    allowed = make({"allow": ["cat"]}, model_path=colour_model)
    only = {t.name for t in tag_image(allowed, picture((230, 20, 20))).tags}
    assert only == {"cat"}


def test_invalid_options_are_a_config_error():
    with pytest.raises(ConfigError, match="top_classes"):
        make({"top_classes": 0})
    with pytest.raises(ConfigError, match="colour"):
        make({"colour": "red"})
    with pytest.raises(ConfigError, match="rename"):
        make({"rename": {"tabby": " "}})
    with pytest.raises(ConfigError, match="deny"):
        make({"deny": [""]})


def test_missing_model_is_a_clear_terminal_error(tmp_path):
    with pytest.raises(ProviderError) as caught:
        tag_image(make(model_path=tmp_path / "absent.onnx"), picture((1, 2, 3)))
    assert isinstance(caught.value, ModelNotFoundError)
    assert (caught.value.code, caught.value.provider) == ("model_unavailable", "efficientnet")
    assert not caught.value.retryable
    assert "make model" in caught.value.message


def test_undecodable_bytes_are_bad_input(colour_model):
    provider = make(model_path=colour_model)
    source = load_image(picture((1, 2, 3)))
    request = ProviderRequest(
        image=fit(source, EfficientNetProvider.constraints).__class__(
            data=b"garbage", format=ImageFormat.JPEG, width=1, height=1, reencoded=True
        ),
        source=source,
        options=EffectiveOptions(lang="en", min_confidence=None, max_tags=None),
        deadline=Deadline.after(5),
    )
    with pytest.raises(ProviderBadInputError):
        asyncio.run(provider.tag(request))


def test_model_is_loaded_once_per_process_and_lazily(colour_model):
    provider = make(model_path=colour_model)
    key = (colour_model.resolve(), 1)
    vision_model._LOADED.pop(key, None)
    assert key not in vision_model._LOADED  # constructing the provider loads nothing
    tag_image(provider, picture((230, 20, 20)))
    first = vision_model._LOADED[key]
    tag_image(make(model_path=colour_model), picture((20, 20, 230)))
    assert vision_model._LOADED[key] is first


def test_model_lookup_order(tmp_path, monkeypatch, colour_model):
    monkeypatch.setenv(vision_model.MODEL_PATH_ENV, str(colour_model))
    assert vision_model.find_model() == colour_model
    assert vision_model.find_model(str(colour_model)) == colour_model
    monkeypatch.delenv(vision_model.MODEL_PATH_ENV)
    expected = [vision_model.LAMBDA_LAYER_MODEL, vision_model.CHECKOUT_MODEL]
    assert vision_model.model_candidates(None) == expected
    with pytest.raises(ModelNotFoundError, match="make model"):
        vision_model.find_model(str(tmp_path / "none.onnx"))


def test_importing_the_provider_loads_no_model_runtime():
    import subprocess
    import sys

    code = (
        "import sys, autotag.providers.efficientnet, autotag.providers\n"
        "autotag.providers.provider_class('efficientnet')\n"
        "heavy = {'onnxruntime', 'numpy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_checkout_lookup_is_safe_where_there_is_no_checkout():
    lambda_file = vision_model.Path("/opt/python/autotag/vision/model.py")
    assert vision_model.checkout_model(lambda_file) == vision_model.LAMBDA_LAYER_MODEL
    repo_file = vision_model.Path("/src/repo/layers/autotag/python/autotag/vision/model.py")
    expected = vision_model.Path("/src/repo/layers/model/autotag-model/efficientnet-lite0.onnx")
    assert vision_model.checkout_model(repo_file) == expected


def test_missing_runtime_is_a_clear_terminal_error(colour_model):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['onnxruntime'] = None  # as if it were not installed\n"
        "from tests.unit.test_efficientnet_provider import make, picture\n"
        "from tests.support.tagging import tag_image\n"
        "from autotag.errors import ProviderError\n"
        "from pathlib import Path\n"
        "try:\n"
        f"    tag_image(make(model_path=Path({str(colour_model)!r})), picture((9, 9, 9)))\n"
        "except ProviderError as error:\n"
        "    assert error.code == 'model_unavailable', error.code\n"
        "    assert 'onnxruntime' in error.message and 'make setup' in error.message, error.message\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
    )
    repo_root = vision_model.Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=repo_root)
