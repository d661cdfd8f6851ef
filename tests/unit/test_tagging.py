import json
import threading

import jsonschema
import pytest
from autotag.cachekey import provider_fingerprint
from autotag.config import AutotagConfig, CachePolicy, ProviderConfig
from autotag.errors import AuthError, QuotaError, TerminalProcessingError, TransientError
from autotag.eventloop import EventLoopPortal
from autotag.events import IMAGE_TAGGED, IMAGE_TAGGING_FAILED
from autotag.image import S3Location
from autotag.models import TagOptions
from autotag.ordering import EventOrder
from autotag.retry import Deadline, RetryPolicy
from autotag.store.base import ImageStatus
from autotag.tagging import TaggingService
from autotag.tagstep import TagStep

from tests.support.events import (
    load_schema,
    next_sequencer,
)
from tests.support.fakes import FakeTagger, InMemoryImageStore, InMemoryObjectStorage, InMemoryPublisher
from tests.support.images import jpeg_bytes, truncated_jpeg

BUCKET = "photos"
USER_TAGS = {"owner": "alice", "project": "holiday", "cost-center": "42"}


@pytest.fixture(scope="module")
def portal():
    running = EventLoopPortal()
    yield running
    running.close()


class Harness:
    def __init__(self, portal, config=None, tagger=None):
        self.config = config or AutotagConfig()
        self.tagger = tagger or FakeTagger()
        self.store = InMemoryImageStore()
        self.objects = InMemoryObjectStorage()
        self.publisher = InMemoryPublisher()
        self.portal = portal
        self.service = self._service()

    def _service(self):
        tag_step = TagStep(
            config=self.config,
            tagger=self.tagger,
            store=self.store,
            portal=self.portal,
            retry_policy=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01),
        )
        return TaggingService(
            config=self.config, tag_step=tag_step, objects=self.objects, publisher=self.publisher
        )

    def reconfigure(self, config):
        """A deployment with another config over the same bucket, table and providers."""
        self.config = config
        self.service = self._service()

    def process(
        self, key, *, version_id="v1", etag=None, options=None, seconds=30.0, sequencer=None, request=False
    ):
        """An S3 event (each call a new PUT, unless `sequencer` is given), or with `request` a Tag
        Image Requested / store-mode request."""
        order = None if request else EventOrder(sequencer=sequencer or next_sequencer())
        return self.service.process_object(
            S3Location(BUCKET, key, version_id),
            options=options,
            deadline=Deadline.after(seconds),
            etag=etag,
            order=order,
        )


@pytest.fixture
def h(portal):
    return Harness(portal)


def test_upload_is_tagged_stored_tagged_on_s3_and_announced(h):
    h.objects.add(BUCKET, "a/dog.jpg", jpeg_bytes(64, 48), version_id="v1", tags=dict(USER_TAGS))
    record = h.process("a/dog.jpg")
    assert record.status is ImageStatus.TAGGED
    assert [t.name for t in record.tags] == ["dog", "pet", "grass"]
    assert (record.width, record.height, record.version_id) == (64, 48, "v1")
    assert h.store.get(BUCKET, "a/dog.jpg") == record
    assert [hit.key for hit in h.store.images_with_tag("DOG").items] == ["a/dog.jpg"]
    assert h.objects.objects[(BUCKET, "a/dog.jpg")].tags == {
        **USER_TAGS,
        "autotag:dog": "0.90",
        "autotag:pet": "0.80",
        "autotag:grass": "0.40",
    }
    assert record.s3_tags.user_tags_kept == 3
    (detail,) = h.publisher.of_type(IMAGE_TAGGED)
    jsonschema.validate(detail, load_schema("image_tagged"))
    assert detail["key"] == "a/dog.jpg"
    assert [t["name"] for t in detail["tags"]] == ["dog", "pet", "grass"]
    assert h.tagger.calls == 1


def test_same_bytes_elsewhere_reuse_the_cached_result(h):
    data = jpeg_bytes(64, 48)
    h.objects.add(BUCKET, "one.jpg", data, version_id="v1")
    h.objects.add(BUCKET, "copy of one.jpg", data, version_id="v1")
    first = h.process("one.jpg")
    second = h.process("copy of one.jpg")
    assert h.tagger.calls == 1
    assert not first.cached
    assert second.cached
    assert second.tags == first.tags
    assert {hit.key for hit in h.store.images_with_tag("dog").items} == {"one.jpg", "copy of one.jpg"}


def test_cache_key_depends_on_options_and_can_be_disabled(portal):
    h = Harness(portal, AutotagConfig(cache=CachePolicy(enabled=False)))
    h.objects.add(BUCKET, "x.jpg", jpeg_bytes(32, 32), version_id="v1")
    h.process("x.jpg")
    h.process("x.jpg")
    assert h.tagger.calls == 2
    h2 = Harness(portal)
    h2.objects.add(BUCKET, "x.jpg", jpeg_bytes(32, 32), version_id="v1")
    h2.process("x.jpg")
    h2.process("x.jpg", options=TagOptions(max_tags=1))
    assert h2.tagger.calls == 2


def test_fingerprint_follows_what_changes_answers():
    base = AutotagConfig(providers=(ProviderConfig(name="basic"),))
    same = AutotagConfig(providers=(ProviderConfig(name="basic", timeout_seconds=3, max_attempts=5),))
    other = AutotagConfig(providers=(ProviderConfig(name="basic", min_confidence=0.5),))
    options = TagOptions()
    assert provider_fingerprint(base, options) == provider_fingerprint(same, options)
    assert provider_fingerprint(base, options) != provider_fingerprint(other, options)
    assert provider_fingerprint(base, options) != provider_fingerprint(base, TagOptions(lang="fr"))


def test_copies_tagged_at_once_make_one_provider_call(portal):
    h = Harness(portal, tagger=FakeTagger(delay=0.2))
    data = jpeg_bytes(48, 48)
    for i in range(6):
        h.objects.add(BUCKET, f"copy{i}.jpg", data, version_id="v1")
    threads = [threading.Thread(target=h.process, args=(f"copy{i}.jpg",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert h.tagger.calls == 1
    assert len(h.store.images_with_tag("dog").items) == 6


def test_deleted_object_is_recorded_as_skipped(h):
    record = h.process("gone.jpg")
    assert record.status is ImageStatus.SKIPPED
    assert record.error == "object no longer exists"
    assert h.store.get(BUCKET, "gone.jpg").status is ImageStatus.SKIPPED
    assert h.tagger.calls == 0
    assert h.publisher.events == []


def test_overwritten_object_is_left_to_its_own_event(h):
    h.objects.add(BUCKET, "over.jpg", jpeg_bytes(32, 32), version_id=None, etag="new-etag")
    record = h.process("over.jpg", version_id=None, etag="old-etag")
    assert record.status is ImageStatus.SKIPPED
    assert h.store.get(BUCKET, "over.jpg") is None
    assert h.tagger.calls == 0


def test_corrupt_image_is_a_recorded_announced_terminal_failure(h):
    h.objects.add(BUCKET, "broken.jpg", truncated_jpeg(), version_id="v1")
    with pytest.raises(TerminalProcessingError) as caught:
        h.process("broken.jpg")
    assert caught.value.code == "corrupt_image"
    assert not caught.value.retryable
    stored = h.store.get(BUCKET, "broken.jpg")
    assert stored.status is ImageStatus.FAILED
    assert stored.error_code == "corrupt_image"
    assert stored.error
    (detail,) = h.publisher.of_type(IMAGE_TAGGING_FAILED)
    jsonschema.validate(detail, load_schema("image_tagging_failed"))
    assert detail["error_code"] == "corrupt_image"
    assert h.tagger.calls == 0


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"content_type": "text/plain"}, "unsupported_format"),
        ({"content_type": "application/pdf"}, "unsupported_format"),
    ],
)
def test_object_refused_from_its_head_is_never_downloaded(h, fields, code):
    h.objects.add(BUCKET, "doc.jpg", jpeg_bytes(16, 16), version_id="v1", **fields)
    with pytest.raises(TerminalProcessingError) as caught:
        h.process("doc.jpg")
    assert caught.value.code == code
    assert h.objects.reads == 0


def test_too_large_object_is_refused_before_download(portal):
    from autotag.config import ImageLimits

    h = Harness(portal, AutotagConfig(limits=ImageLimits(max_bytes=100)))
    h.objects.add(BUCKET, "big.jpg", jpeg_bytes(64, 64), version_id="v1")
    with pytest.raises(TerminalProcessingError) as caught:
        h.process("big.jpg")
    assert caught.value.code == "image_too_large"
    assert h.objects.reads == 0


def test_generic_content_type_is_sniffed(h):
    h.objects.add(BUCKET, "raw.jpg", jpeg_bytes(16, 16), version_id="v1", content_type="binary/octet-stream")
    assert h.process("raw.jpg").status is ImageStatus.TAGGED


def test_transient_error_is_retried_in_process(h):
    h.objects.add(BUCKET, "flaky.jpg", jpeg_bytes(16, 16), version_id="v1")
    h.tagger.fail_next(TransientError("503"), times=1)
    assert h.process("flaky.jpg").status is ImageStatus.TAGGED
    assert h.tagger.calls == 2


def test_persistent_transient_error_is_raised_and_leaves_no_trace(h):
    h.objects.add(BUCKET, "down.jpg", jpeg_bytes(16, 16), version_id="v1")
    h.tagger.fail_next(TransientError("503"), times=5)
    with pytest.raises(TransientError) as caught:
        h.process("down.jpg")
    assert caught.value.retryable
    assert h.tagger.calls == 2
    assert h.store.get(BUCKET, "down.jpg") is None
    assert h.publisher.events == []
    # Not cached either: a later attempt calls the provider again.
    h.tagger._queued.clear()
    assert h.process("down.jpg").status is ImageStatus.TAGGED
    assert h.tagger.calls == 3


@pytest.mark.parametrize("error", [QuotaError("no credits"), AuthError("bad key")])
def test_terminal_provider_errors_are_not_retried(h, error):
    h.objects.add(BUCKET, "q.jpg", jpeg_bytes(16, 16), version_id="v1")
    h.tagger.fail_next(error, times=3)
    with pytest.raises(TerminalProcessingError) as caught:
        h.process("q.jpg")
    assert caught.value.code == error.code
    assert h.tagger.calls == 1
    assert h.store.get(BUCKET, "q.jpg").error_code == error.code


def test_reference_s3_refuses_is_terminal_and_leaves_the_existing_record(h):
    h.objects.add(BUCKET, "plain.jpg", jpeg_bytes(16, 16), version_id=None)
    tagged = h.process("plain.jpg", version_id=None)
    assert tagged.status is ImageStatus.TAGGED
    events_before = list(h.publisher.events)
    with pytest.raises(TerminalProcessingError) as caught:
        h.process("plain.jpg", version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    error = caught.value
    assert (error.code, error.retryable, error.record) == ("invalid_s3_reference", False, None)
    assert error.cause.code == "invalid_s3_reference"
    assert "s3://photos/plain.jpg" in str(error)
    # Not retried, nothing read or called, and the record of the object that exists is untouched.
    assert h.tagger.calls == 1
    assert h.objects.reads == 1
    assert h.store.get(BUCKET, "plain.jpg") == tagged
    assert h.publisher.events == events_before


def test_expired_deadline_is_retryable(h):
    h.objects.add(BUCKET, "late.jpg", jpeg_bytes(16, 16), version_id="v1")
    with pytest.raises(TransientError) as caught:
        h.process("late.jpg", seconds=0)
    assert caught.value.code == "deadline"
    assert h.tagger.calls == 0


def test_full_user_tag_set_is_untouched_and_the_record_says_why(h):
    ten = {f"user-{i}": f"value {i}" for i in range(10)}
    obj = h.objects.add(BUCKET, "full.jpg", jpeg_bytes(16, 16), version_id="v1", tags=dict(ten))
    record = h.process("full.jpg")
    assert obj.tags == ten
    assert record.s3_tags.written == {}
    assert record.s3_tags.reason == "no free tag slots: 10 user tags (S3 allows 10)"
    assert record.tags  # still stored and indexed
    assert h.store.images_with_tag("dog").items


def test_retag_with_fewer_labels_removes_stale_index_items_and_s3_tags(h):
    obj = h.objects.add(BUCKET, "re.jpg", jpeg_bytes(16, 16), version_id="v1", tags=dict(USER_TAGS))
    h.process("re.jpg")
    assert h.store.index_item_count() == 3
    h.tagger.labels = (("dog", 0.7),)
    h.reconfigure(AutotagConfig(lang="fr"))  # a new fingerprint: the cache does not answer
    record = h.process("re.jpg")
    assert h.store.index_item_count() == 1
    assert h.store.images_with_tag("pet").items == []
    assert obj.tags == {**USER_TAGS, "autotag:dog": "0.70"}
    assert record.s3_tags.removed == ("autotag:grass", "autotag:pet")


def test_failed_providers_are_counted_as_provider_failures(h, capsys):
    from autotag.errors import AllProvidersFailedError
    from autotag.models import ProviderOutcome, ProviderStatus, TagResult

    h.objects.add(BUCKET, "f.jpg", jpeg_bytes(16, 16), version_id="v1")
    failed = ProviderStatus(
        provider="imagedescriber", status=ProviderOutcome.FAILED, error_code="quota", retryable=False
    )
    h.tagger.fail_next(AllProvidersFailedError(TagResult(providers=(failed,))))
    capsys.readouterr()
    with pytest.raises(TerminalProcessingError):
        h.process("f.jpg")
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    metrics = [m for m in emitted if "ProviderFailures" in m]
    assert len(metrics) == 1
    assert metrics[0]["ProviderFailures"] == [1.0] or metrics[0]["ProviderFailures"] == 1.0
    assert metrics[0]["provider"] == "imagedescriber"
    assert metrics[0]["error_code"] == "quota"


# --- tag_image: the tag step for images that are not stored ----------------------------------------


def image_of(data):
    from autotag.intake.checks import inspect_image

    return inspect_image(data, limits=AutotagConfig().limits)


def test_tag_image_reuses_the_cache_of_stored_objects_and_stores_nothing(h):
    data = jpeg_bytes(40, 30, seed=5)
    h.objects.add(BUCKET, "stored.jpg", data, version_id="v1")
    h.process("stored.jpg")
    events = list(h.publisher.events)
    result = h.service.tag_image(image_of(data), deadline=Deadline.after(10))
    assert [t.name for t in result.tags] == ["dog", "pet", "grass"]
    assert h.tagger.calls == 1
    # Other bytes, twice: one provider call, then the cache.
    other = image_of(jpeg_bytes(40, 30, seed=6))
    first = h.service.tag_image(other, TagOptions(), deadline=Deadline.after(10))
    again = h.service.tag_image(other, TagOptions(), deadline=Deadline.after(10))
    assert again == first
    assert h.tagger.calls == 2
    assert h.service.tag_image(other, TagOptions(max_tags=1), deadline=Deadline.after(10)) is not None
    assert h.tagger.calls == 3  # other options, other cache key
    assert h.tagger.images[1] == other.sha256
    assert h.store.index_item_count() == 3  # only stored.jpg's index items
    assert h.publisher.events == events
    assert h.objects.tag_writes == 1


def test_tag_image_single_flight(portal):
    h = Harness(portal, tagger=FakeTagger(delay=0.2))
    image = image_of(jpeg_bytes(48, 48, seed=7))
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(h.service.tag_image(image, deadline=Deadline.after(10)))
        )
        for _ in range(5)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert h.tagger.calls == 1
    assert len(results) == 5
    assert all(r == results[0] for r in results)


def test_tag_image_retries_and_counts_provider_failures(h, capsys):
    from autotag.errors import AllProvidersFailedError
    from autotag.models import ProviderOutcome, ProviderStatus, TagResult

    failed = ProviderStatus(
        provider="imagedescriber", status=ProviderOutcome.FAILED, error_code="transient", retryable=True
    )
    image = image_of(jpeg_bytes(24, 24, seed=8))
    h.tagger.fail_next(AllProvidersFailedError(TagResult(providers=(failed,))), times=1)
    capsys.readouterr()
    assert h.service.tag_image(image, deadline=Deadline.after(10)).tags
    assert h.tagger.calls == 2
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [(m["provider"], m["error_code"]) for m in emitted if "ProviderFailures" in m] == [
        ("imagedescriber", "transient")
    ]


def test_tag_image_failures_are_raised_and_not_cached(h):
    image = image_of(jpeg_bytes(24, 24, seed=9))
    h.tagger.fail_next(TransientError("503"), times=2)
    with pytest.raises(TransientError):
        h.service.tag_image(image, deadline=Deadline.after(10))
    assert h.tagger.calls == 2
    h.service.tag_image(image, deadline=Deadline.after(10))
    assert h.tagger.calls == 3


def test_tag_image_retry_policy_per_call(h):
    image = image_of(jpeg_bytes(24, 24, seed=10))
    h.tagger.fail_next(TransientError("503"), times=1)
    with pytest.raises(TransientError):
        h.service.tag_image(image, deadline=Deadline.after(10), retry=RetryPolicy(max_attempts=1))
    assert h.tagger.calls == 1


class LocationRecordingTagger(FakeTagger):
    def __init__(self):
        super().__init__()
        self.locations = []

    async def tag(self, image, options=None, *, deadline, s3=None, require_success=True):
        self.locations.append(s3)
        return await super().tag(image, options, deadline=deadline, s3=s3)


def test_tag_image_passes_the_source_location_to_the_providers(portal):
    h = Harness(portal, tagger=LocationRecordingTagger())
    where = S3Location(BUCKET, "x.jpg", "v1")
    h.service.tag_image(image_of(jpeg_bytes(20, 20, seed=11)), deadline=Deadline.after(10), s3=where)
    h.service.tag_image(image_of(jpeg_bytes(20, 20, seed=12)), deadline=Deadline.after(10))
    assert h.tagger.locations == [where, None]


# --- Requests never damage a good record; events are ordered ------------------------------------


def test_a_bad_request_leaves_the_record_and_announces_nothing(h):
    from autotag.errors import ObjectNotFoundError, UnknownProviderError

    h.objects.add(BUCKET, "good.jpg", jpeg_bytes(32, 32), version_id="v2")
    good = h.process("good.jpg", version_id="v2")
    events = list(h.publisher.events)
    with pytest.raises(UnknownProviderError):
        h.process("good.jpg", version_id="v2", request=True, options=TagOptions(providers=["nope"]))
    with pytest.raises(ObjectNotFoundError):
        h.process("good.jpg", version_id="v1", request=True)  # a version that no longer exists
    assert h.store.get(BUCKET, "good.jpg") == good
    assert h.publisher.events == events
    assert h.tagger.calls == 1
    assert h.store.leases == {}  # every claim given back


def test_an_event_meeting_a_claimed_record_is_retried_later(h):
    from autotag.errors import ObjectBusyError
    from autotag.ordering import EventOrder

    h.objects.add(BUCKET, "busy.jpg", jpeg_bytes(32, 32), version_id="v1")
    held = h.store.claim(BUCKET, "busy.jpg", EventOrder(sequencer=next_sequencer()), lease_seconds=30)
    with pytest.raises(ObjectBusyError) as caught:
        h.process("busy.jpg", seconds=1.0)  # waits half its time at most, then goes back to the queue
    assert caught.value.retryable
    assert caught.value.code == "object_busy"
    # A holder that finishes soon is waited for.
    threading.Timer(0.3, h.store.release, args=(held,)).start()
    assert h.process("busy.jpg").status is ImageStatus.TAGGED


def test_a_failed_retag_keeps_owning_the_tags_still_on_the_object(h):
    obj = h.objects.add(BUCKET, "keep.jpg", jpeg_bytes(32, 32), version_id="v1")
    h.process("keep.jpg")
    ours = dict(obj.tags)
    h.tagger.fail_next(QuotaError("no credits"))
    h.reconfigure(AutotagConfig(lang="de"))  # no cache answer
    with pytest.raises(TerminalProcessingError):
        h.process("keep.jpg", request=True)
    assert h.store.get(BUCKET, "keep.jpg").s3_tags.written == ours
    h.tagger.labels = (("cat", 0.9),)
    h.reconfigure(AutotagConfig(lang="it"))
    record = h.process("keep.jpg", request=True)
    assert obj.tags == {"autotag:cat": "0.90"}
    assert set(record.s3_tags.removed) == set(ours)
