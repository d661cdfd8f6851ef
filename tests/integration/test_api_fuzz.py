"""Property-based fuzzing of POST /v1/tags through the real handler: no input yields a 5xx, and
every reply is one the OpenAPI document lists, with a body that validates against it.

Bodies are drawn from strategies built from the served OpenAPI document (the TagRequest schema,
its $refs, bounds and enums), mixed with values of the wrong type, interesting strings (unsafe and
public URLs, broken base64, data URLs, real/corrupt/bomb images) and raw junk that is not JSON.
URL fetches go through the fake internet: a public address without a stand-in is refused, and a
connect to any non-public address fails the test (the guard would have been bypassed).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.api_stack import api_stack, rest_event
from tests.support.images import bomb_png, jpeg_bytes, truncated_jpeg

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics")]

MAX_EXAMPLES = 300
RUN: dict[str, Any] = {"cases": 0, "statuses": {}}


@pytest.fixture(scope="module")
def stack(aws_emulator):
    with api_stack(aws_emulator) as built:
        built.internet.refuse_public = True
        built.put_image("fuzz/cat.jpg", jpeg_bytes(48, 32, seed=1))
        yield built


# --- Strategies ------------------------------------------------------------------------------------

SMALL_JPEG = base64.b64encode(jpeg_bytes(24, 16, seed=2)).decode()
INTERESTING_STRINGS = [
    SMALL_JPEG,
    "data:image/jpeg;base64," + SMALL_JPEG,
    "data:text/html;base64,PGh0bWw+",
    "data:image/png,notbase64",
    base64.b64encode(bomb_png()).decode(),
    base64.b64encode(truncated_jpeg(64, 48)).decode(),
    base64.b64encode(b"GIF89a" + b"\0" * 20).decode(),
    "====",
    "/etc/passwd",
    "../../../../etc/passwd",
    "https://images.example.com/photos/cat.jpg",
    "https://redirect.example.com/go",
    "https://127.0.0.1/",
    "https://10.0.0.1/x.jpg",
    "https://169.254.169.254/latest/meta-data/",
    "https://[::1]/",
    "https://[::ffff:10.0.0.1]/",
    "https://0x7f000001/",
    "https://2130706433/",
    "https://intranet.example.com/x",
    "https://dual.example.com/x",
    "https://8.8.8.8/x.jpg",
    "https://unknown.example.org/x.jpg",
    "http://images.example.com/photos/cat.jpg",
    "gopher://127.0.0.1:25/",
    "https://user:pw@images.example.com/",
    "https://images.example.com:0/",
    "\u0000\ud7ff\ufffd",
    "fuzz/cat.jpg",
    "en",
    "imagedescriber",
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(INTERESTING_STRINGS),
)
json_junk = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def from_schema(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values shaped by a JSON Schema (including values at and just past its bounds), sometimes junk."""
    schema = _resolve(schema, components)
    shaped: st.SearchStrategy[Any]
    if "anyOf" in schema:
        shaped = st.one_of([from_schema(s, components, depth + 1) for s in schema["anyOf"]])
    elif "enum" in schema or "const" in schema:
        shaped = st.sampled_from(schema.get("enum") or [schema["const"]])
    else:
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            properties = schema.get("properties", {})
            shaped = st.fixed_dictionaries(
                {},
                optional={name: from_schema(sub, components, depth + 1) for name, sub in properties.items()},
            )
            if schema.get("additionalProperties") is False:
                shaped = st.one_of(
                    shaped,
                    st.builds(
                        lambda d, extra: {**d, **extra},
                        shaped,
                        st.dictionaries(st.text(max_size=8), json_scalars, max_size=2),
                    ),
                )
        elif kind == "array":
            shaped = st.lists(from_schema(schema.get("items", {}), components, depth + 1), max_size=4)
        elif kind == "integer":
            low, high = schema.get("minimum", -5), schema.get("maximum", 2000)
            shaped = st.one_of(
                st.integers(low - 2, high + 2), st.sampled_from([low - 1, low, high, high + 1])
            )
        elif kind == "number":
            low, high = schema.get("minimum", -1.0), schema.get("maximum", 2.0)
            shaped = st.one_of(
                st.floats(low - 1, high + 1, allow_nan=False),
                st.sampled_from([low - 0.001, low, high, high + 1e-9]),
            )
        elif kind == "boolean":
            shaped = st.booleans()
        elif kind == "string":
            shaped = st.one_of(
                st.sampled_from(INTERESTING_STRINGS),
                st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 40), 40)),
            )
        elif kind == "null":
            shaped = st.none()
        else:
            shaped = json_junk
    # Mostly well-typed below the top, so requests get past validation to intake, fetcher and S3.
    return st.one_of(shaped, shaped, shaped, json_junk) if depth > 0 else shaped


IMAGES = [s for s in INTERESTING_STRINGS[:8]]
URLS = [s for s in INTERESTING_STRINGS if "://" in s]


def one_source(openapi: dict[str, Any], bucket: str) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies with exactly one source (so most reach intake, the fetcher or S3) and schema-shaped options."""
    components = openapi["components"]["schemas"]
    options = st.one_of(
        st.just({}),
        st.fixed_dictionaries({}, optional={"max_tags": st.integers(0, 5), "lang": st.just("en")}),
        from_schema(components["TagOptions"], components),
    )
    s3_refs = st.fixed_dictionaries(
        {
            "bucket": st.sampled_from([bucket, "not-allowed-bucket", "x"]),
            "key": st.sampled_from(["fuzz/cat.jpg", "missing.jpg", "a" * 1025]),
        },
        optional={"version_id": st.text(max_size=5)},
    )
    source = st.one_of(
        st.fixed_dictionaries({"image": st.sampled_from(IMAGES)}),
        st.fixed_dictionaries({"url": st.sampled_from(URLS)}),
        st.fixed_dictionaries({"s3": s3_refs}, optional={"store": st.booleans()}),
    )
    return st.builds(lambda src, opts: {**src, "options": opts}, source, options)


def request_bodies(openapi: dict[str, Any], bucket: str) -> st.SearchStrategy[str]:
    components = openapi["components"]["schemas"]
    body_schema = openapi["paths"]["/v1/tags"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    shaped = st.one_of(from_schema(body_schema, components), one_source(openapi, bucket)).map(json.dumps)
    junk_json = json_junk.map(json.dumps)
    not_json = st.one_of(
        st.text(max_size=60),
        shaped.map(lambda text: text[: max(1, len(text) // 2)]),  # truncated JSON
        st.just("{" * 2000),
        st.just('{"image": "' + "A" * 10 + '"' + "}" * 3),
    )
    valid_ish = one_source(openapi, bucket).map(json.dumps)
    return st.one_of(shaped, valid_ish, valid_ish, junk_json, not_json)


content_types = st.sampled_from(
    [None, "application/json", "application/json; charset=utf-8", "application/problem+json"] * 3
    + ["text/plain", "multipart/form-data", "application/x-www-form-urlencoded", "image/png"]
)


# --- The property --------------------------------------------------------------------------------


def test_post_tags_never_answers_5xx(stack, openapi):
    operation = openapi["paths"]["/v1/tags"]["post"]
    documented = set(operation["responses"])
    from jsonschema import Draft202012Validator

    validators = {
        status: Draft202012Validator(
            {"components": openapi["components"], **spec["content"]["application/json"]["schema"]}
        )
        for status, spec in operation["responses"].items()
    }

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
    )
    @given(
        body=request_bodies(openapi, stack.bucket),
        content_type=content_types,
        base64_body=st.sampled_from([False, False, False, True]),
    )
    def post(body: str, content_type: str | None, base64_body: bool) -> None:
        headers = {"Content-Type": content_type} if content_type else {}
        event = rest_event("POST", "/v1/tags", body=body, headers=headers, base64_body=base64_body)
        if not content_type:
            event["headers"].pop("Content-Type", None)
            event["multiValueHeaders"].pop("Content-Type", None)
        reply = stack.invoke(event)
        RUN["cases"] += 1
        RUN["statuses"][reply.status] = RUN["statuses"].get(reply.status, 0) + 1
        assert reply.status < 500, (reply.status, reply.body, body[:300])
        assert str(reply.status) in documented, reply.status
        payload = reply.json
        errors = list(validators[str(reply.status)].iter_errors(payload))
        assert not errors, (reply.status, [e.message for e in errors[:3]])

    post()
    print(f"\nPOST /v1/tags fuzz: {RUN['cases']} cases, statuses {dict(sorted(RUN['statuses'].items()))}")
    assert RUN["cases"] >= MAX_EXAMPLES * 0.9
    assert 200 in RUN["statuses"], "no case reached the provider: the strategies are too far off"
