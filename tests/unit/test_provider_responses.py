"""Provider response models (autotag.providers.responses), the failure helper and the log redaction."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import httpx
import pytest
from autotag import errors
from autotag.providers.failures import error_text, provider_error
from autotag.providers.redaction import RedactSecrets, Scrubber, redact
from autotag.providers.responses import ItemList, Items, NonBlank, Numeric, ResponseModel, Text, parse
from autotag.providers.responses.coreviz import TagObject, TagResponse
from autotag.providers.responses.google_vision import AnnotateResponse, ErrorEnvelope
from autotag.providers.responses.huawei import TaggingResponse
from autotag.providers.responses.pixlab import TagImgResponse
from autotag.providers.responses.rekognition import DetectLabelsResponse

PROVIDER_MODULES = (
    "coreviz",
    "google_vision",
    "huawei",
    "imagedescriber",
    "imagekit",
    "pixlab",
    "rekognition",
)


class Item(ResponseModel):
    name: NonBlank
    score: Numeric = None
    note: Text = None


class Answer(ResponseModel):
    items: ItemList[Item]
    extras: Items[Item] = []


# --- the shared lenient types ------------------------------------------------------------------


def test_items_that_do_not_fit_are_skipped_not_fatal() -> None:
    answer = Answer.model_validate(
        {"items": [{"name": "cat", "score": "0.5"}, {"name": "  "}, "dog", {"score": 1}, {"name": "owl"}]}
    )
    assert [(i.name, i.score) for i in answer.items] == [("cat", 0.5), ("owl", None)]
    assert answer.extras == []


def test_a_required_array_that_is_not_one_fails_an_optional_one_reads_as_empty() -> None:
    with pytest.raises(errors.ProviderResponseError):
        parse(Answer, {"items": "cat"}, provider="p", what="no items")
    assert Answer.model_validate({"items": [], "extras": {"name": "x"}}).extras == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.25, 0.25), (3, 3.0), ("37.51", 37.51), (True, None), ("nan", None), ("high", None), ([1], None)],
)
def test_numeric_reads_numbers_and_numeric_strings_only(value: object, expected: float | None) -> None:
    assert Item.model_validate({"name": "n", "score": value}).score == expected


def test_optional_text_of_the_wrong_type_reads_as_absent() -> None:
    assert Item.model_validate({"name": "n", "note": 5}).note is None


def test_parse_failure_is_our_typed_error_without_validation_internals() -> None:
    with pytest.raises(errors.ProviderResponseError) as caught:
        parse(Answer, {"unexpected": True}, provider="demo", what="answer has no items", request_id="r-1")
    error = caught.value
    assert error.code == "bad_provider_response"
    assert error.retryable
    assert (error.provider, error.request_id) == ("demo", "r-1")
    assert str(error) == "demo: answer has no items"
    for internal in ("validation error", "pydantic", "input_value", "Field required"):
        assert internal not in str(error)


def test_models_are_built_on_first_use_not_at_import() -> None:
    script = (
        "import importlib, json, pydantic\n"
        f"names = {list(PROVIDER_MODULES)!r}\n"
        "built = {}\n"
        "for name in names:\n"
        "    module = importlib.import_module('autotag.providers.responses.' + name)\n"
        "    models = [v for v in vars(module).values() if isinstance(v, type)\n"
        "              and issubclass(v, pydantic.BaseModel) and v.__module__ == module.__name__]\n"
        "    built[name] = sorted(m.__name__ for m in models if m.__pydantic_complete__)\n"
        "print(json.dumps(built))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == {name: [] for name in PROVIDER_MODULES}


# --- each provider's documented answer ---------------------------------------------------------


def test_google_answer_needs_responses_and_tolerates_odd_annotations() -> None:
    with pytest.raises(errors.ProviderResponseError):
        parse(AnnotateResponse, {"responses": []}, provider="g", what="no responses[0]")
    answer = AnnotateResponse.model_validate(
        {
            "responses": [
                {
                    "labelAnnotations": [{"description": "Dog", "score": 0.9}, {"score": 0.1}, "x"],
                    "localizedObjectAnnotations": [
                        {"name": "Dog", "boundingPoly": {"normalizedVertices": [{"x": 0.1}, {"y": 0.5}]}}
                    ],
                    "error": "not an object",
                }
            ]
        }
    ).responses[0]
    assert [label.description for label in answer.labelAnnotations] == ["Dog"]
    vertices = answer.localizedObjectAnnotations[0].boundingPoly.normalizedVertices  # type: ignore[union-attr]
    assert [(v.x, v.y) for v in vertices] == [(0.1, 0.0), (0.0, 0.5)]
    assert answer.error is None


def test_google_error_envelope_finds_the_error_info() -> None:
    envelope = ErrorEnvelope.model_validate(
        {
            "error": {
                "status": "PERMISSION_DENIED",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.Help"},
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "metadata": {"service": "vision.googleapis.com", "n": 1},
                    },
                ],
            }
        }
    )
    assert envelope.error is not None
    assert envelope.error.error_info() == ("API_KEY_INVALID", {"service": "vision.googleapis.com", "n": "1"})


def test_rekognition_labels_must_be_a_list() -> None:
    with pytest.raises(errors.ProviderResponseError):
        parse(DetectLabelsResponse, {"Labels": None}, provider="r", what="no Labels")
    labels = DetectLabelsResponse.model_validate(
        {"Labels": [{"Name": "Cat", "Instances": [{"BoundingBox": {"Left": 0.1}}]}, {"Name": ""}]}
    ).Labels
    assert [(label.Name, label.Instances[0].BoundingBox) for label in labels] == [("Cat", None)]


def test_huawei_tags_with_string_confidences() -> None:
    answer = TaggingResponse.model_validate(
        {"result": {"tags": [{"tag": "dog", "confidence": "88.5", "i18n_tag": {"en": " dog ", "zh": 3}}, 7]}}
    )
    [tag] = answer.result.tags
    assert (tag.confidence, tag.i18n_tag) == (88.5, {"en": "dog"})
    with pytest.raises(errors.ProviderResponseError):
        parse(TaggingResponse, {"result": {"labels": []}}, provider="h", what="no result.tags")


def test_coreviz_needs_one_documented_field_and_reads_both_tag_forms() -> None:
    with pytest.raises(errors.ProviderResponseError):
        parse(TagResponse, {"result": "ok"}, provider="c", what="not documented")
    answer = TagResponse.model_validate({"tags": ["sky", {"label": "tree", "score": 80}, {"tag": 5}, 3]})
    assert answer.tags[0] == "sky"
    assert isinstance(answer.tags[1], TagObject)
    assert (answer.tags[1].text, answer.tags[1].value) == ("tree", 80.0)
    assert answer.tags[2].text is None  # type: ignore[union-attr]
    assert len(answer.tags) == 3


def test_coreviz_blank_classification_reads_as_absent() -> None:
    assert TagResponse.model_validate({"classification": "  ", "confidence": 0.9}).classification is None


def test_pixlab_tags_absent_or_not_a_list_read_as_none() -> None:
    assert TagImgResponse.model_validate({"status": 200}).tags is None
    assert TagImgResponse.model_validate({"status": 200, "tags": "dog"}).tags is None
    assert TagImgResponse.model_validate({"status": True}).status is None


# --- the failure helper ------------------------------------------------------------------------


def test_throttling_error_takes_retry_after_from_the_response_unless_given() -> None:
    response = httpx.Response(429, headers={"Retry-After": "7"})
    from_header = provider_error(errors.ThrottledError, "slow down", provider="p", response=response)
    assert isinstance(from_header, errors.ThrottledError)
    assert from_header.retry_after == 7.0
    given = provider_error(
        errors.ThrottledError, "slow down", provider="p", response=response, retry_after=2.0
    )
    assert given.retry_after == 2.0  # type: ignore[attr-defined]
    other = provider_error(errors.AuthError, "no", provider="p", provider_code=401, code="auth_config")
    assert (type(other), other.code, other.provider_code) == (errors.AuthError, "auth_config", 401)


def test_error_text_cuts_scrubs_and_names_the_request() -> None:
    text = error_text("refused", "key sk-123456 is bad " + "x" * 400, secrets=("sk-123456",), request_id="rq")
    assert text.startswith("refused: key *** is bad x")
    assert text.endswith(" (request_id rq)")
    assert len(text) < 250
    assert error_text("refused") == "refused"


# --- the log redaction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (
            'HTTP Request: POST https://vision.example/v1/images:annotate?key=AIzaSECRET "HTTP/1.1 200 OK"',
            "AIzaSECRET",
        ),
        ("receive_response_headers.complete return_value=(b'X-Subject-Token', b'MIIEtoken')", "MIIEtoken"),
        ("send_request_headers.started request=[(b'Authorization', b'Bearer abc123')]", "abc123"),
        ("Making request with headers {'X-Amz-Security-Token': 'FwoGZXIvYXdzEJr'}", "FwoGZXIvYXdzEJr"),
        ("x-amz-security-token:FwoGZXIvYXdzEJr\nhost:rekognition", "FwoGZXIvYXdzEJr"),
    ],
)
def test_the_filter_blanks_credentials_of_every_library(line: str, secret: str) -> None:
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "%s", (line,), None)
    assert RedactSecrets().filter(record)
    assert secret not in record.getMessage()
    assert "***" in record.getMessage()
    assert redact("GET /v1/files?size=10 HTTP/1.1") == "GET /v1/files?size=10 HTTP/1.1"


def test_scrubber_removes_secret_values_and_cuts_short() -> None:
    scrub = Scrubber({"password": "hunter22", "region": "eu", "n": 1234}.values(), limit=40).adding("tok-999")
    assert scrub("bad hunter22 in eu, token tok-999, code 1234") == "bad *** in eu, token ***, code ***"
    assert len(scrub("y" * 100)) == 40
