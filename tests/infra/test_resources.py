"""autotag.deploy: the deployment description both stacks build from (pure Python, no synth)."""

from __future__ import annotations

import pytest
from autotag.config import AutotagConfig, ObjectFilters, ProviderConfig, load_config_from_env
from autotag.deploy.concurrency import plan_concurrency
from autotag.deploy.config import DeploymentConfig, FunctionName, NotificationSettings, load_deployment_config
from autotag.deploy.environment import function_environment
from autotag.deploy.filters import notification_filters
from autotag.deploy.patterns import object_created_pattern
from autotag.deploy.specs import describe
from autotag.errors import ConfigError
from autotag.settings import load_settings
from hypothesis import given
from hypothesis import strategies as st

from tests.infra.conftest import DEFAULT_CONFIG, EXAMPLE_CONFIG

pytestmark = pytest.mark.infra


def _config(*providers: ProviderConfig, concurrency: int = 10, **deploy) -> DeploymentConfig:
    tagging = AutotagConfig(providers=providers, processing={"concurrency": concurrency})
    return DeploymentConfig(tagging=tagging, **deploy)


def test_rate_limit_sets_max_concurrency_from_calls_per_instance():
    plan = plan_concurrency(_config(ProviderConfig(name="huawei", rate_limit_per_minute=600), concurrency=10))
    # 10 in flight at 3 s per call = 200 calls/min per instance; floor(600 / 200) = 3.
    assert plan.calls_per_minute_per_instance == 200
    assert plan.max_concurrency == 3
    assert plan.peak_calls_per_minute == 600
    assert not plan.exceeds_rate_limit


def test_imagedescriber_limit_is_known_and_the_sqs_floor_is_flagged():
    plan = plan_concurrency(_config(ProviderConfig(name="imagedescriber")))
    assert plan.rate_limit_per_minute == 30
    assert plan.max_concurrency == 2  # SQS event sources cannot go below 2
    assert plan.exceeds_rate_limit
    assert "to 1 to stay under the limit" in plan.explanation


def test_one_record_at_a_time_fits_imagedescriber():
    plan = plan_concurrency(_config(ProviderConfig(name="imagedescriber"), concurrency=1))
    assert plan.calls_per_minute_per_instance == 15
    assert plan.max_concurrency == 2
    assert not plan.exceeds_rate_limit


def test_tightest_default_provider_limits_and_unlimited_uses_the_cap():
    config = _config(
        ProviderConfig(name="huawei", rate_limit_per_minute=6000),
        ProviderConfig(name="coreviz", rate_limit_per_minute=300),
        ProviderConfig(name="basic"),
        concurrency=5,
    )
    assert plan_concurrency(config).limiting_provider == "coreviz"
    assert plan_concurrency(_config(ProviderConfig(name="basic"))).max_concurrency == 50


def test_queue_visibility_is_six_function_timeouts_plus_the_window():
    config = _config(ProviderConfig(name="basic"), functions={"on_upload": {"timeout_seconds": 300}})
    assert describe(config).tag_queue.visibility_timeout_seconds == 6 * 300 + 5


@pytest.mark.parametrize(
    ("deploy", "message"),
    [
        ({"functions": {"tag_api": {"timeout_seconds": 30}}}, "29 s integration timeout"),
        ({"queue": {"batch_size": 100, "max_batching_window_seconds": 0}}, "batching_window"),
        (
            {
                "functions": {"on_upload": {"timeout_seconds": 900}},
                "queue": {"max_batching_window_seconds": 300},
            },
            None,
        ),
        ({"monitoring": {"log_retention_days": 31}}, "retention values"),
        ({"provider_call_seconds": {"nope": 1.0}}, "unconfigured providers"),
        (
            {"tagging": {"filters": {"include_prefixes": ["photos/"]}}, "api": {"upload_prefix": "uploads/"}},
            "outside tagging.filters.include_prefixes",
        ),
        (
            {
                "tagging": {"filters": {"exclude_prefixes": ["uploads/"]}},
                "api": {"upload_prefix": "uploads/"},
            },
            "excluded by tagging.filters.exclude_prefixes",
        ),
        # A wildcard would widen tag_api's s3:PutObject grant; a prefix must end in "/".
        ({"api": {"upload_prefix": "up*/"}}, "api.upload_prefix"),
        ({"api": {"upload_prefix": "uploads"}}, "api.upload_prefix"),
        ({"api": {"upload_prefix": "/uploads/"}}, "api.upload_prefix"),
    ],
)
def test_invalid_deployment_settings_are_refused(tmp_path, deploy, message):
    import json

    file = tmp_path / "deploy.json"
    file.write_text(json.dumps(deploy))
    if message is None:  # 6 x 900 + 300 = 5700 s: within SQS's 12 h, accepted
        load_deployment_config(file)
        return
    with pytest.raises(ConfigError, match=message):
        load_deployment_config(file)


def test_config_files_load_and_tagging_file_is_shared(tmp_path):
    default = load_deployment_config(DEFAULT_CONFIG)
    assert [p.name for p in default.tagging.providers] == ["efficientnet", "basic"]
    example = load_deployment_config(EXAMPLE_CONFIG)
    assert [p.key for p in example.tagging.providers] == ["imagedescriber", "rekognition", "basic"]
    (tmp_path / "autotag.toml").write_text('[[providers]]\nname = "pixlab"\n')
    (tmp_path / "deploy.toml").write_text('tagging_file = "autotag.toml"\n[queue]\nbatch_size = 5\n')
    loaded = load_deployment_config(tmp_path / "deploy.toml")
    assert loaded.tagging.providers[0].name == "pixlab"
    assert [s.provider_key for s in describe(loaded).secrets] == ["pixlab"]
    (tmp_path / "broken.toml").write_text("[queue\n")
    with pytest.raises(ConfigError, match="not valid"):
        load_deployment_config(tmp_path / "broken.toml")


def test_case_insensitive_suffixes_subscribe_by_prefix_only():
    filters = ObjectFilters(include_prefixes=("a/", "a/b/", "c/"), include_suffixes=(".jpg", ".JPG", ".png"))
    assert {(f.prefix, f.suffix) for f in notification_filters(filters)} == {("a/", None), ("c/", None)}
    assert {(f.prefix, f.suffix) for f in notification_filters(ObjectFilters())} == {(None, None)}


def test_case_sensitive_suffixes_are_subscribed_as_given():
    filters = ObjectFilters(
        include_prefixes=("a/", "a/b/", "c/"),
        include_suffixes=(".jpg", ".JPG", ".png"),
        case_sensitive_suffixes=True,
    )
    pairs = {(f.prefix, f.suffix) for f in notification_filters(filters)}
    assert pairs == {(p, s) for p in ("a/", "c/") for s in (".jpg", ".JPG", ".png")}


def test_too_many_combinations_fall_back_to_prefix_filters():
    filters = ObjectFilters(
        include_prefixes=tuple(f"p{i}/" for i in range(20)),
        include_suffixes=(".a", ".b", ".c", ".d", ".e", ".f"),
        case_sensitive_suffixes=True,
    )
    assert {f.suffix for f in notification_filters(filters)} == {None}


def test_mixed_case_suffix_is_delivered_in_both_notification_modes():
    filters = ObjectFilters(include_prefixes=("photos/",))
    assert filters.accepts("photos/IMG_0001.Jpg")
    [rule] = notification_filters(filters)
    assert rule.prefix == "photos/"
    assert rule.suffix is None
    pattern = object_created_pattern("b", notification_filters(filters))
    assert pattern["detail"]["object"]["key"] == [{"wildcard": "photos/*"}]


keys = st.text(alphabet="abcPHOTOS/._-jpgJPG", min_size=1, max_size=30)
suffix_choices = [".jpg", ".jpeg", ".png", ".JPG", ".Jpg", "g"]
suffix_lists = st.lists(st.sampled_from(suffix_choices), max_size=3).map(tuple)
prefix_lists = st.lists(st.sampled_from(["a/", "a/b/", "photos/", "PHOTOS/"]), max_size=3).map(tuple)


@given(key=keys, prefixes=prefix_lists, suffixes=suffix_lists, case_sensitive=st.booleans())
def test_s3_filters_deliver_everything_the_function_accepts(key, prefixes, suffixes, case_sensitive):
    filters = ObjectFilters(
        include_prefixes=prefixes, include_suffixes=suffixes, case_sensitive_suffixes=case_sensitive
    )
    delivered = any(
        key.startswith(f.prefix or "") and key.endswith(f.suffix or "") for f in notification_filters(filters)
    )
    # No gap: whatever the function would tag, S3 delivers (mixed-case suffixes included).
    if filters.accepts(key):
        assert delivered


def test_function_environment_round_trips_through_the_runtime_loaders():
    config = load_deployment_config(EXAMPLE_CONFIG)
    resources = describe(config)
    env = function_environment(
        resources.function(FunctionName.ON_UPLOAD),
        config=config,
        table_name="t",
        idempotency_table_name="i",
        event_bus_name="b",
        images_bucket="images",
        dlq_url="https://sqs.example/dlq",
        secret_ids={"imagedescriber": "arn:aws:secretsmanager:us-east-1:1:secret:x-AbCdEf"},
    )
    settings = load_settings(env)
    assert settings.allowed_buckets == ("images",)
    assert settings.dlq_url == "https://sqs.example/dlq"
    runtime = load_config_from_env(env)
    imagedescriber = runtime.provider("imagedescriber")
    assert imagedescriber is not None
    assert str(imagedescriber.secret_id).endswith("x-AbCdEf")
    assert runtime.filters == config.tagging.filters
    assert runtime.processing.concurrency == 1


def test_rules_and_secrets_follow_the_config():
    config = load_deployment_config(EXAMPLE_CONFIG)
    resources = describe(config)
    assert [r.rule_id for r in resources.rules] == ["TagImageRequested"]
    assert [s.provider_key for s in resources.secrets] == ["imagedescriber"]
    assert resources.uses_rekognition
    mode = NotificationSettings(mode="eventbridge")
    eventbridge = describe(config.model_copy(update={"notifications": mode}), bucket_name="b")
    assert [(r.rule_id, r.bus, r.target) for r in eventbridge.rules] == [
        ("TagImageRequested", "autotag", "on_event"),
        ("ObjectCreated", "default", "on_event"),
    ]


def test_api_settings_reach_tag_api_only():
    from autotag.api.settings import load_api_settings

    data = load_deployment_config(EXAMPLE_CONFIG).model_dump(mode="json")
    data["api"].update(max_image_chars=2_000_000, upload_prefix="photos/new/")
    config = DeploymentConfig.model_validate(data)
    resources = describe(config)
    names = {
        "table_name": "t",
        "idempotency_table_name": "i",
        "event_bus_name": "b",
        "images_bucket": "images",
    }
    api_env = function_environment(
        resources.function(FunctionName.TAG_API), config=config, dlq_url=None, **names
    )
    api = load_api_settings(api_env)
    assert (api.max_image_chars, api.upload_prefix) == (2_000_000, "photos/new/")
    for name in (FunctionName.ON_UPLOAD, FunctionName.ON_EVENT):
        env = function_environment(resources.function(name), config=config, dlq_url="q", **names)
        assert "API_MAX_IMAGE_CHARS" not in env
        assert "UPLOAD_PREFIX" not in env


def test_function_specs_say_what_each_function_touches():
    resources = describe(load_deployment_config(EXAMPLE_CONFIG))
    upload, api, event = (resources.function(n) for n in FunctionName)
    assert (upload.uses_idempotency, api.uses_idempotency, event.uses_idempotency) == (False, False, True)
    assert (upload.queries_tag_index, api.queries_tag_index, event.queries_tag_index) == (False, True, False)
    assert (upload.dead_letter, api.dead_letter, event.dead_letter) == ("tag_dlq", None, "event_dlq")
    assert [s.presigns_uploads for s in (upload, api, event)] == [False, True, False]
