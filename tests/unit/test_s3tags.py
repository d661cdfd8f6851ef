import pytest
from autotag.config import S3TagPolicy
from autotag.errors import TagWriteRefusedError
from autotag.image import S3Location
from autotag.models import Tag
from autotag.s3tags import (
    MAX_KEY_CHARS,
    MAX_VALUE_CHARS,
    ObjectTagWriter,
    plan_tag_set,
    sanitize,
)
from hypothesis import given
from hypothesis import strategies as st

from tests.support.fakes import InMemoryObjectStorage

POLICY = S3TagPolicy()


def labels(*pairs):
    return [Tag(name=n, confidence=c, provider="basic") for n, c in pairs]


def s3_legal(text: str) -> bool:
    import unicodedata

    return all(c == " " or c in "+-=._:/@" or unicodedata.category(c)[0] in "LN" for c in text)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("dog", "dog"),
        ("rock & roll", "rock roll"),
        ("  T-shirt  ", "T-shirt"),
        ("café crème", "café crème"),
        ("猫", "猫"),
        ("a\tb\nc", "a b c"),
        ("person's hat!", "person s hat"),
        ("e-mail: a@b.c/d=e+f_g", "e-mail: a@b.c/d=e+f_g"),
        ("🐶 dog", "dog"),
        ("#$%", ""),
    ],
)
def test_sanitize(raw, clean):
    assert sanitize(raw, 128) == clean


@given(st.text(max_size=400), st.integers(min_value=1, max_value=256))
def test_sanitize_is_always_legal_and_short(text, limit):
    out = sanitize(text, limit)
    assert len(out) <= limit
    assert s3_legal(out)
    assert out == out.strip()


def test_merge_keeps_user_tags_and_adds_ours_best_first():
    current = {"owner": "alice", "project": "x", "cost-center": "42"}
    plan = plan_tag_set(current, labels(("pet", 0.5), ("Dog", 0.91234), ("animal", None)), POLICY)
    assert plan.tag_set == {
        "owner": "alice",
        "project": "x",
        "cost-center": "42",
        "autotag:Dog": "0.91",
        "autotag:pet": "0.50",
        "autotag:animal": "",
    }
    assert plan.write.user_tags_kept == 3
    assert plan.write.reason is None
    assert plan.changed


def test_retag_replaces_only_our_previous_tags():
    current = {"owner": "alice", "autotag:dog": "0.90", "autotag:cat": "0.80", "autotag:sofa": "0.70"}
    owned = {"autotag:dog": "0.90", "autotag:cat": "0.80", "autotag:sofa": "0.70"}
    plan = plan_tag_set(current, labels(("dog", 0.6)), POLICY, owned=owned)
    assert plan.tag_set == {"owner": "alice", "autotag:dog": "0.60"}
    assert plan.write.removed == ("autotag:cat", "autotag:sofa")


def test_no_free_slots_writes_nothing_and_says_why():
    current = {f"user{i}": str(i) for i in range(10)}
    plan = plan_tag_set(current, labels(("dog", 0.9)), POLICY)
    assert plan.tag_set == current
    assert not plan.changed
    assert plan.write.written == {}
    assert plan.write.reason == "no free tag slots: 10 user tags (S3 allows 10)"


def test_partial_slots_are_filled_with_the_best_labels():
    current = {f"user{i}": "v" for i in range(8)}
    # Tags arrive ranked by the pipeline (content before attributes); that order is kept.
    plan = plan_tag_set(current, labels(("b", 0.9), ("d", 0.7), ("c", 0.5), ("a", 1.0)), POLICY)
    assert list(plan.write.written) == ["autotag:b", "autotag:d"]
    assert len(plan.tag_set) == 10
    assert plan.write.reason == "2 of 4 tags written: 8 user tags leave 2 free slots"


def test_policy_caps_and_thresholds():
    policy = S3TagPolicy(key_prefix="at/", max_tags=2, min_confidence=0.5)
    plan = plan_tag_set({}, labels(("a", 0.4), ("b", 0.9), ("d", 0.7), ("c", 0.6)), policy)
    assert plan.write.written == {"at/b": "0.90", "at/d": "0.70"}  # ranked order; "a" is under 0.5


def test_labels_that_collide_after_sanitizing_are_written_once():
    plan = plan_tag_set({}, labels(("rock & roll", 0.9), ("rock  roll", 0.8)), POLICY)
    assert plan.write.written == {"autotag:rock roll": "0.90"}


def test_long_labels_fit_the_key_length():
    plan = plan_tag_set({}, labels(("x" * 300, 0.9)), POLICY)
    (key,) = plan.write.written
    assert len(key) == MAX_KEY_CHARS
    assert key.startswith("autotag:")


@given(
    user=st.dictionaries(
        st.text(alphabet="abcdefghij", min_size=1, max_size=5), st.text(max_size=5), max_size=10
    ),
    names=st.lists(st.text(min_size=1, max_size=40).filter(str.strip), max_size=30),
)
def test_merge_invariants(user, names):
    tags = [Tag(name=n, confidence=0.5, provider="p") for n in names]
    plan = plan_tag_set(user, tags, POLICY)
    assert len(plan.tag_set) <= 10
    assert {k: v for k, v in plan.tag_set.items() if not k.startswith("autotag:")} == user
    for key, value in plan.tag_set.items():
        if key.startswith("autotag:"):
            assert len(key) <= MAX_KEY_CHARS
            assert len(value) <= MAX_VALUE_CHARS
            assert s3_legal(key)
            assert s3_legal(value)


LOCATION = S3Location("bucket", "photo.jpg", "v1")


def test_writer_merges_into_the_object_version():
    objects = InMemoryObjectStorage()
    obj = objects.add("bucket", "photo.jpg", b"x", version_id="v1", tags={"owner": "bob"})
    write = ObjectTagWriter(objects).apply(LOCATION, labels(("dog", 0.9)), POLICY)
    assert obj.tags == {"owner": "bob", "autotag:dog": "0.90"}
    assert write.written == {"autotag:dog": "0.90"}


def test_writer_skips_the_write_when_nothing_changes():
    objects = InMemoryObjectStorage()
    objects.add("bucket", "photo.jpg", b"x", version_id="v1", tags={"autotag:dog": "0.90"})
    ObjectTagWriter(objects).apply(LOCATION, labels(("dog", 0.9)), POLICY)
    assert objects.tag_writes == 0


def test_writer_disabled_or_object_gone():
    objects = InMemoryObjectStorage()
    writer = ObjectTagWriter(objects)
    assert writer.apply(LOCATION, labels(("dog", 0.9)), S3TagPolicy(enabled=False)).reason == (
        "S3 object tagging is disabled"
    )
    assert writer.apply(LOCATION, labels(("dog", 0.9)), POLICY).reason == "object no longer exists"


class CountingObjects(InMemoryObjectStorage):
    def __init__(self) -> None:
        super().__init__()
        self.tag_reads = 0

    def get_tags(self, location):
        self.tag_reads += 1
        return super().get_tags(location)


def test_writer_does_not_read_the_tag_set_of_a_version_the_get_found_untagged():
    objects = CountingObjects()
    obj = objects.add("bucket", "photo.jpg", b"x", version_id="v1")
    write = ObjectTagWriter(objects).apply(LOCATION, labels(("dog", 0.9)), POLICY, tag_count=0)
    assert objects.tag_reads == 0
    assert obj.tags == write.written == {"autotag:dog": "0.90"}


@pytest.mark.parametrize(
    ("location", "tag_count"),
    [
        (LOCATION, 1),  # the user's tags are read to be kept
        (LOCATION, None),  # not known
        (S3Location("bucket", "photo.jpg"), 0),  # no version: the key may name a newer object by now
    ],
)
def test_writer_reads_the_tag_set_unless_the_version_has_none(location, tag_count):
    objects = CountingObjects()
    obj = objects.add("bucket", "photo.jpg", b"x", version_id="v1", tags={"owner": "bob"})
    ObjectTagWriter(objects).apply(location, labels(("dog", 0.9)), POLICY, tag_count=tag_count)
    assert objects.tag_reads == 1
    assert obj.tags == {"owner": "bob", "autotag:dog": "0.90"}


class RefusingObjects(InMemoryObjectStorage):
    def put_tags(self, location, tags):
        raise TagWriteRefusedError("S3 refused the tag write: AccessDenied", s3_code="AccessDenied")


def test_writer_records_a_refusal():
    objects = RefusingObjects()
    objects.add("bucket", "photo.jpg", b"x", version_id="v1")
    write = ObjectTagWriter(objects).apply(LOCATION, labels(("dog", 0.9)), POLICY)
    assert write.written == {}
    assert write.reason == "S3 refused the tag write: AccessDenied"


def test_a_users_tag_under_our_prefix_is_the_users():
    """autotag owns only what it recorded writing: a prefixed tag it never wrote stays, and a label
    that would take its key is dropped (reported), not written over it."""
    current = {"autotag:favourite": "yes", "autotag:dog": "mine", "autotag:pet": "0.80"}
    plan = plan_tag_set(current, labels(("dog", 0.9), ("pet", 0.7)), POLICY, owned={"autotag:pet": "0.80"})
    assert plan.tag_set == {"autotag:favourite": "yes", "autotag:dog": "mine", "autotag:pet": "0.70"}
    assert plan.write.written == {"autotag:pet": "0.70"}
    assert [(d.key, d.value, d.reason.value) for d in plan.write.dropped] == [
        ("autotag:dog", "0.90", "user_tag")
    ]
    assert plan.write.removed == ()
    assert plan.write.user_tags_kept == 2


def test_a_tag_we_wrote_and_the_user_changed_is_the_users_now():
    current = {"autotag:dog": "definitely"}
    plan = plan_tag_set(current, labels(("cat", 0.9)), POLICY, owned={"autotag:dog": "0.90"})
    assert plan.tag_set == {"autotag:dog": "definitely", "autotag:cat": "0.90"}
    assert plan.write.removed == ()


def test_tags_beyond_the_free_slots_are_reported_as_dropped():
    current = {f"user{i}": "v" for i in range(9)}
    plan = plan_tag_set(current, labels(("a", 0.9), ("b", 0.8), ("c", 0.7)), POLICY)
    assert list(plan.write.written) == ["autotag:a"]
    assert [(d.key, d.reason.value) for d in plan.write.dropped] == [
        ("autotag:b", "tag_limit"),
        ("autotag:c", "tag_limit"),
    ]
