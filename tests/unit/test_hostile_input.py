"""Hostile input never becomes a 5xx or a library's internals: damaged TIFF strip tables, Pillow
messages with memory addresses, request bodies Python's JSON reader cannot hold."""

from __future__ import annotations

import base64

import pytest
from autotag.api.body import MAX_JSON_DEPTH, check_json_object, json_depth
from autotag.errors import AutotagError, CorruptImageError, MalformedJsonError, public_text
from autotag.image import ImageConstraints, ImageFormat
from autotag.intake.fit import fit
from autotag.intake.source import load_image

from tests.support.images import (
    TIFF_ASCII,
    TIFF_LONG,
    TIFF_RATIONAL,
    TIFF_UNDEFINED,
    tiff_with_strip_types,
)


def test_a_well_formed_crafted_tiff_is_read():
    image = load_image(tiff_with_strip_types())
    assert (image.format, image.width) == (ImageFormat.TIFF, 8)
    assert fit(image, ImageConstraints(formats=frozenset({ImageFormat.JPEG}))).reencoded


@pytest.mark.parametrize(
    "kind", [TIFF_ASCII, TIFF_UNDEFINED, TIFF_RATIONAL], ids=["text", "undefined", "rational0"]
)
@pytest.mark.parametrize("field", ["offsets", "counts"])
def test_tiff_strip_tables_that_are_not_integers_are_corrupt_images(kind, field):
    data = (
        tiff_with_strip_types(kind, TIFF_LONG)
        if field == "offsets"
        else tiff_with_strip_types(TIFF_LONG, kind)
    )
    with pytest.raises(CorruptImageError) as caught:
        load_image(data)
    assert caught.value.code == "corrupt_image"
    assert "not integers" in caught.value.message


def test_pillow_messages_lose_their_memory_addresses():
    with pytest.raises(CorruptImageError) as caught:
        load_image(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    assert "0x" not in caught.value.message
    assert "object at" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cannot identify image file <_io.BytesIO object at 0x7f3a2c1b2d40>", "cannot identify image file"),
        ("bad <PIL.PngImagePlugin.PngImageFile image mode=RGB size=1x1 at 0x10A2B3C4D>!", "bad!"),
        ("freed 0x00007f3a2c1b2d40 twice", "freed an address twice"),
        ("status 0x1F stays", "status 0x1F stays"),
    ],
)
def test_public_text_scrubs_object_reprs_and_addresses(text, expected):
    assert public_text(text) == expected
    assert AutotagError(text).message == expected


def _event(body: str | None, *, encoded: bool = False) -> dict:
    if encoded and body is not None:
        body = base64.b64encode(body.encode()).decode()
    return {"body": body, "isBase64Encoded": encoded}


@pytest.mark.parametrize(
    "body",
    [
        "{",
        "[",
        "null",
        "[]",
        '"text"',
        "12",
        "true",
        "",
        None,
        "[" * 1000 + "]" * 1000,
        '{"a":' * 1000 + "1" + "}" * 1000,
        '{"options": {"max_tags": ' + "9" * 5000 + "}}",
        '{"a": ' + "[" * 70 + "1" + "]" * 70 + "}",  # valid for the reader, deeper than we accept
    ],
)
def test_bodies_that_are_not_a_readable_json_object_are_malformed_json(body):
    with pytest.raises(MalformedJsonError) as caught:
        check_json_object(_event(body))
    assert caught.value.code == "malformed_json"
    assert "sys." not in caught.value.message  # the interpreter's own advice is not ours to give


def test_base64_bodies_are_decoded_first():
    check_json_object(_event('{"image": "x"}', encoded=True))
    with pytest.raises(MalformedJsonError):
        check_json_object({"body": "%%%", "isBase64Encoded": True})


def test_json_depth_is_counted_without_recursion():
    assert json_depth(1) == 0
    assert json_depth({"a": [1, {"b": []}]}) == 4
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert json_depth(deep) == MAX_JSON_DEPTH + 1


def test_a_secret_id_without_an_aws_region_is_a_clear_auth_config_error(monkeypatch):
    from autotag.config import ProviderConfig
    from autotag.credentials import Credentials
    from autotag.errors import AuthError

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AuthError) as caught:  # refused building the client: nothing is sent
        Credentials().get(ProviderConfig(name="imagedescriber", secret_id="autotag/imagedescriber"))
    assert caught.value.code == "auth_config"
    assert "no AWS region is configured" in caught.value.message
    assert "NoRegionError" not in str(caught.value)
