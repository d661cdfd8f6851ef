from __future__ import annotations

import json

import jsonschema
import pytest
from autotag.config import (
    CONFIG_ENV,
    AutotagConfig,
    ObjectFilters,
    ProviderConfig,
    S3TagPolicy,
    config_json_schema,
    get_config,
    load_config_file,
    load_config_from_env,
)
from autotag.errors import ConfigError

TOML = """
lang = "de"
default_providers = ["basic"]

[[providers]]
name = "basic"
max_tags = 8

[[providers]]
name = "huawei"
id = "huawei-eu"
endpoint = "https://image.eu-west-101.myhuaweicloud.eu"
secret_id = "autotag/huawei"
min_confidence = 0.6
options = { threshold = 60 }

[s3_tags]
key_prefix = "at:"
max_tags = 5

[limits]
max_bytes = 10485760

[filters]
include_prefixes = ["uploads/"]
"""


def test_toml_file(tmp_path):
    path = tmp_path / "autotag.toml"
    path.write_text(TOML)
    config = load_config_file(path)
    assert config.lang == "de"
    assert [p.key for p in config.providers] == ["basic", "huawei-eu"]
    huawei = config.provider("huawei-eu")
    assert huawei is not None
    assert huawei.name == "huawei"
    assert huawei.options == {"threshold": 60}
    assert huawei.min_confidence == 0.6
    assert config.default_provider_keys == ("basic",)
    assert config.s3_tags.key_prefix == "at:"
    assert config.limits.max_bytes == 10 * 1024 * 1024
    assert config.filters.include_prefixes == ("uploads/",)


def test_json_file_equals_toml(tmp_path):
    toml_path = tmp_path / "a.toml"
    toml_path.write_text(TOML)
    from_toml = load_config_file(toml_path)
    json_path = tmp_path / "a.json"
    json_path.write_text(from_toml.model_dump_json())
    assert load_config_file(json_path) == from_toml


def test_defaults_are_the_offline_vision_model_and_basic():
    config = AutotagConfig()
    assert [p.name for p in config.providers] == ["efficientnet", "basic"]
    assert config.default_provider_keys == ("efficientnet", "basic")


def test_environment_json():
    env = {CONFIG_ENV: json.dumps({"providers": [{"name": "basic", "max_tags": 3}]})}
    config = load_config_from_env(env)
    assert config.providers[0].max_tags == 3
    assert load_config_from_env({}) == AutotagConfig()


def test_environment_with_bad_json_names_the_variable():
    with pytest.raises(ConfigError, match=CONFIG_ENV):
        load_config_from_env({CONFIG_ENV: "{not json"})


def test_get_config_reads_once(monkeypatch):
    get_config.cache_clear()
    monkeypatch.setenv(CONFIG_ENV, json.dumps({"lang": "fr"}))
    try:
        assert get_config().lang == "fr"
        monkeypatch.setenv(CONFIG_ENV, json.dumps({"lang": "it"}))
        assert get_config().lang == "fr"
        get_config.cache_clear()
        assert get_config().lang == "it"
    finally:
        get_config.cache_clear()


@pytest.mark.parametrize(
    ("content", "suffix", "fragment"),
    [
        ("[[providers]]\nname = 3\n", ".toml", "providers.0.name"),
        ('lang = "de"\nbogus = 1\n', ".toml", "bogus"),
        ("[[providers]\n", ".toml", "not valid toml"),
        ('{"providers": []}', ".json", "providers"),
        ('{"providers": [{"name": "basic"}, {"name": "basic"}]}', ".json", "repeated: basic"),
        ('{"default_providers": ["huawei"]}', ".json", "'huawei' is not configured"),
        ('{"s3_tags": {"key_prefix": "aws:x"}}', ".json", "aws:"),
        ('{"s3_tags": {"max_tags": 11}}', ".json", "s3_tags.max_tags"),
        ('{"providers": [{"name": "basic", "min_confidence": 2}]}', ".json", "min_confidence"),
        ("{", ".json", "not valid json"),
    ],
)
def test_invalid_files_give_a_config_error_with_the_location(tmp_path, content, suffix, fragment):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_config_file(path)
    assert caught.value.code == "invalid_config"
    assert fragment.lower() in str(caught.value).lower()
    assert str(path) in str(caught.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config_file(tmp_path / "nope.toml")


def test_schema_is_valid_and_validates_configs(tmp_path):
    schema = config_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good = AutotagConfig(providers=(ProviderConfig(name="basic"), ProviderConfig(name="huawei", max_tags=3)))
    assert list(validator.iter_errors(json.loads(good.model_dump_json()))) == []
    assert list(validator.iter_errors({"providers": [{"name": "basic", "max_tags": -1}]}))
    assert list(validator.iter_errors({"unknown_field": 1}))
    assert "providers" in schema["properties"]
    assert schema["$defs"]["ProviderConfig"]["properties"]["secret_id"]["description"]


def test_s3_prefix_characters():
    assert S3TagPolicy(key_prefix="auto tag/@:").key_prefix == "auto tag/@:"
    with pytest.raises(ValueError, match="may only use"):
        S3TagPolicy(key_prefix="tag#")


def test_object_filters():
    filters = ObjectFilters(include_prefixes=("in/",), exclude_prefixes=("in/private/",))
    assert filters.accepts("in/a.JPG")
    assert not filters.accepts("in/a.txt")
    assert not filters.accepts("out/a.jpg")
    assert not filters.accepts("in/private/a.jpg")
    strict = ObjectFilters(include_suffixes=(".jpg",), case_sensitive_suffixes=True)
    assert strict.accepts("a.jpg")
    assert not strict.accepts("a.JPG")
    assert not ObjectFilters(exclude_suffixes=(".GIF",)).accepts("x.gif")
