"""The functions' environment settings: one loader for the runtime, API and on_batch settings."""

from __future__ import annotations

import pytest
from autotag.api.settings import load_api_settings
from autotag.batch_tasks import load_batch_settings
from autotag.errors import ConfigError
from autotag.settings import load_settings

RUNTIME_ENV = {"TABLE_NAME": "t", "IDEMPOTENCY_TABLE_NAME": "i", "EVENT_BUS_NAME": "b"}


def test_runtime_settings_read_their_variables_and_split_the_allowed_buckets():
    settings = load_settings({**RUNTIME_ENV, "ALLOWED_BUCKETS": " a, b ,,c ", "UNRELATED": "x"})
    assert (settings.table_name, settings.event_bus_name) == ("t", "b")
    assert settings.allowed_buckets == ("a", "b", "c")
    assert load_settings(RUNTIME_ENV).allowed_buckets == ()
    assert load_settings({**RUNTIME_ENV, "ALLOWED_BUCKETS": ""}).allowed_buckets == ()


def test_a_missing_or_invalid_variable_is_named_and_its_value_is_not():
    env = {"TABLE_NAME": "t", "IDEMPOTENCY_TTL_SECONDS": "secret-looking-0"}
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert message.startswith("function environment is incomplete or invalid: ")
    for name in ("IDEMPOTENCY_TABLE_NAME", "EVENT_BUS_NAME", "IDEMPOTENCY_TTL_SECONDS"):
        assert name in message
    assert "secret-looking" not in message
    assert caught.value.code == "invalid_config"


def test_api_settings_defaults_and_their_own_message():
    settings = load_api_settings({"UPLOAD_PREFIX": "/in"})
    assert (settings.upload_prefix, settings.max_body_bytes) == ("in/", 6_000_000)
    with pytest.raises(ConfigError, match=r"^API settings are invalid: API_MAX_BODY_BYTES$"):
        load_api_settings({"API_MAX_BODY_BYTES": str(7 * 1024 * 1024)})


def test_batch_settings_name_what_on_batch_needs():
    settings = load_batch_settings({"TABLE_NAME": "t", "TAG_QUEUE_URL": "q", "IMAGES_BUCKET": "b"})
    assert (settings.tag_queue_url, settings.region) == ("q", "us-east-1")
    with pytest.raises(ConfigError, match="TAG_QUEUE_URL, IMAGES_BUCKET"):
        load_batch_settings({"TABLE_NAME": "t"})
