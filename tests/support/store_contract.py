"""The ImageStore contract, run against every implementation (in-memory fake and DynamoDB).

A test module subclasses :class:`ImageStoreContract` and provides three fixtures:
``store`` (an empty store), ``clock`` (a :class:`FakeWallClock` the store reads) and
``index_keys`` (a callable returning every tag-index item key held, as (pk, sk) pairs).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from autotag.decisions import CorrectionAction, TagCorrections, TagDecision
from autotag.errors import BadInputError
from autotag.models import ProviderOutcome, ProviderStatus, Tag, TagResult
from autotag.store.base import ImageRecord, ImageStatus, S3TagWrite
from autotag.store.keys import MAX_INDEXED_TAGS, tag_pk


class FakeWallClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def tags(*pairs: tuple[str, float | None], provider: str = "basic") -> tuple[Tag, ...]:
    return tuple(Tag(name=name, confidence=conf, provider=provider) for name, conf in pairs)


def run_together(workers: list[Callable[[], object]]) -> list[BaseException]:
    """Start every worker in its own thread, wait for all; what they raised."""
    errors: list[BaseException] = []

    def guarded(work: Callable[[], object]) -> None:
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def record(bucket: str, key: str, *pairs: tuple[str, float | None], **fields) -> ImageRecord:
    values = {
        "bucket": bucket,
        "key": key,
        "version_id": "v1",
        "etag": "e1",
        "sha256": "ab" * 32,
        "size": 1234,
        "content_type": "image/png",
        "width": 10,
        "height": 20,
        "status": ImageStatus.TAGGED,
        "tags": tags(*pairs),
        "title": "A title",
        "providers": (
            ProviderStatus(
                provider="basic", status=ProviderOutcome.OK, latency_ms=12.5, tag_count=len(pairs)
            ),
        ),
        "s3_tags": S3TagWrite(written={"autotag:dog": "0.9"}, user_tags_kept=3),
        "updated_at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    }
    values.update(fields)
    return ImageRecord(**values)


def decide(
    current: ImageRecord, *, add: list[str] = (), remove: list[str] = (), by: str = "apikey:k1"
) -> TagCorrections:
    """A correction update as the API makes it: decisions bound to the record's bytes."""
    now = datetime.now(UTC)
    made = [
        TagDecision(tag=name, action=action, by=by, at=now, sha256=current.sha256)
        for action, names in ((CorrectionAction.REMOVE, remove), (CorrectionAction.ADD, add))
        for name in names
    ]
    return (current.corrections or TagCorrections()).with_decisions(made)


class ImageStoreContract:
    def test_missing_record_is_none(self, store):
        assert store.get("bucket", "nothing.png") is None

    def test_record_round_trips(self, store):
        original = record("b", "dir/a photo ü.png", ("dog", 0.9), ("pet", None))
        store.put(original)
        assert store.get("b", "dir/a photo ü.png") == original
        assert store.get("other", "dir/a photo ü.png") is None

    def test_tag_query_is_best_first_and_case_insensitive(self, store):
        store.put(record("b", "low.png", ("Dog", 0.2)))
        store.put(record("b", "high.png", ("dog", 0.95)))
        store.put(record("b", "none.png", ("DOG", None)))
        store.put(record("b", "mid.png", ("  dog ", 0.5), ("cat", 0.99)))
        page = store.images_with_tag("DOG")
        assert [h.key for h in page.items] == ["high.png", "mid.png", "low.png", "none.png"]
        assert page.cursor is None
        assert [h.confidence for h in page.items] == [0.95, 0.5, 0.2, None]
        assert page.items[0].providers == ("basic",)
        assert page.items[0].version_id == "v1"
        assert [h.key for h in store.images_with_tag("cat").items] == ["mid.png"]
        assert store.images_with_tag("horse").items == []

    def test_pages_follow_cursor_without_repeats(self, store):
        for i in range(5):
            store.put(record("b", f"img{i}.png", ("tree", 0.1 * (i + 1))))
        seen: list[str] = []
        cursor, pages = None, 0
        while True:
            page = store.images_with_tag("tree", limit=2, cursor=cursor)
            pages += 1
            seen.extend(h.key for h in page.items)
            cursor = page.cursor
            if cursor is None:
                break
        assert pages == 3
        assert seen == [f"img{i}.png" for i in reversed(range(5))]

    def test_exact_page_has_no_cursor(self, store):
        for i in range(2):
            store.put(record("b", f"x{i}.png", ("sky", 0.5)))
        assert store.images_with_tag("sky", limit=2).cursor is None

    @pytest.mark.parametrize("cursor", ["garbage!", "", "bm90IGpzb24", "eyJwayI6MX0", "x" * 5000])
    def test_bad_cursor_is_bad_input(self, store, cursor):
        with pytest.raises(BadInputError, match="invalid cursor"):
            store.images_with_tag("tree", cursor=cursor)

    def test_cursor_of_another_tag_is_refused(self, store):
        for i in range(3):
            store.put(record("b", f"c{i}.png", ("tree", 0.5), ("car", 0.5)))
        cursor = store.images_with_tag("tree", limit=1).cursor
        assert cursor is not None
        with pytest.raises(BadInputError):
            store.images_with_tag("car", cursor=cursor)

    @pytest.mark.parametrize("limit", [0, -1, 100_000])
    def test_bad_limit_is_bad_input(self, store, limit):
        with pytest.raises(BadInputError, match="limit"):
            store.images_with_tag("tree", limit=limit)

    def test_retag_replaces_index_items(self, store, index_keys):
        store.put(record("b", "k.png", ("dog", 0.9), ("cat", 0.8), ("sofa", 0.7)))
        assert len(index_keys()) == 3
        store.put(record("b", "k.png", ("dog", 0.4)))
        assert index_keys() == {(tag_pk("dog"), next(iter(index_keys()))[1])}
        assert store.images_with_tag("cat").items == []
        assert store.images_with_tag("sofa").items == []
        assert [h.confidence for h in store.images_with_tag("dog").items] == [0.4]

    def test_retag_with_identical_tags_keeps_one_item_each(self, store, index_keys):
        rec = record("b", "same.png", ("dog", 0.9), ("cat", 0.8))
        store.put(rec)
        store.put(rec.model_copy(update={"version_id": "v2"}))
        assert len(index_keys()) == 2
        assert store.images_with_tag("dog").items[0].version_id == "v2"

    def test_failed_or_skipped_record_drops_index_items(self, store, index_keys):
        store.put(record("b", "k.png", ("dog", 0.9)))
        store.put(record("b", "k.png", ("dog", 0.9), status=ImageStatus.FAILED, error_code="corrupt_image"))
        assert index_keys() == set()
        assert store.get("b", "k.png").status is ImageStatus.FAILED

    def test_index_is_capped_per_image(self, store, index_keys):
        many = [(f"tag{i:03d}", 1 - i / 1000) for i in range(MAX_INDEXED_TAGS + 11)]
        store.put(record("b", "many.png", *many))
        assert len(index_keys()) == MAX_INDEXED_TAGS
        assert store.images_with_tag(f"tag{MAX_INDEXED_TAGS - 1:03d}").items
        assert store.images_with_tag(f"tag{MAX_INDEXED_TAGS:03d}").items == []
        assert len(store.get("b", "many.png").tags) == MAX_INDEXED_TAGS + 11
        # The largest re-tag: every old item stale, a full new set.
        store.put(record("b", "many.png", *[(f"new{i:03d}", 0.5) for i in range(MAX_INDEXED_TAGS + 5)]))
        assert len(index_keys()) == MAX_INDEXED_TAGS
        assert all(pk.startswith(tag_pk("new")) for pk, _ in index_keys())

    def test_concurrent_retags_leave_exactly_the_last_index(self, store, index_keys):
        def writer(n: int) -> None:
            store.put(record("b", "race.png", *[(f"w{n}-{j}", 0.5) for j in range(3)]))

        assert run_together([functools.partial(writer, n) for n in range(6)]) == []
        final = store.get("b", "race.png")
        expected = {tag_pk(t.name) for t in final.tags}
        assert {pk for pk, _ in index_keys()} == expected

    # --- corrections ----------------------------------------------------------------------------

    def test_correction_is_kept_apart_and_wins_in_the_index(self, store, index_keys):
        store.put(record("b", "c.png", ("dog", 0.9), ("cat", 0.5)))
        stored = store.correct("b", "c.png", lambda r: decide(r, add=["Sunset"], remove=["cat"]))
        assert stored is not None
        got = store.get("b", "c.png")
        assert [t.name for t in got.tags] == ["dog", "cat"]  # what the provider said, untouched
        assert [(d.tag, d.action) for d in got.corrections.log] == [
            ("cat", CorrectionAction.REMOVE),
            ("Sunset", CorrectionAction.ADD),
        ]
        assert got.corrections.log[0].by == "apikey:k1"
        assert [t.name for t in got.tags_in_force] == ["Sunset", "dog"]
        assert got.tags_in_force[0].provider == "person"
        assert [h.key for h in store.images_with_tag("sunset").items] == ["c.png"]
        assert store.images_with_tag("sunset").items[0].providers == ("person",)
        assert store.images_with_tag("cat").items == []
        assert {pk for pk, _ in index_keys()} == {tag_pk("sunset"), tag_pk("dog")}

    def test_correction_survives_a_retag_of_the_same_bytes(self, store, index_keys):
        store.put(record("b", "r.png", ("dog", 0.9), ("cat", 0.5)))
        store.correct("b", "r.png", lambda r: decide(r, add=["sunset"], remove=["cat"]))
        # A re-tag (redrive, backfill, re-upload of the same bytes) writes new provider output.
        store.put(record("b", "r.png", ("cat", 0.7), ("bird", 0.6), version_id="v2"))
        got = store.get("b", "r.png")
        assert got.version_id == "v2"
        assert got.corrections is not None
        assert got.corrections.version == 1
        assert [t.name for t in got.tags_in_force] == ["sunset", "bird"]
        assert {pk for pk, _ in index_keys()} == {tag_pk("sunset"), tag_pk("bird")}

    def test_corrections_do_not_apply_to_different_bytes(self, store):
        store.put(record("b", "d.png", ("dog", 0.9)))
        store.correct("b", "d.png", lambda r: decide(r, remove=["dog"]))
        assert store.images_with_tag("dog").items == []
        store.put(record("b", "d.png", ("dog", 0.8), sha256="cd" * 32))
        got = store.get("b", "d.png")
        assert len(got.corrections.log) == 1  # kept in the log, but made on other bytes
        assert [t.name for t in got.tags_in_force] == ["dog"]
        assert [h.key for h in store.images_with_tag("dog").items] == ["d.png"]

    def test_later_decision_on_a_tag_wins(self, store):
        store.put(record("b", "l.png", ("dog", 0.9)))
        store.correct("b", "l.png", lambda r: decide(r, remove=["dog"]))
        store.correct("b", "l.png", lambda r: decide(r, add=["DOG"]))
        got = store.get("b", "l.png")
        assert got.corrections.version == 2
        assert [(t.name, t.confidence, t.sources) for t in got.tags_in_force] == [
            ("dog", 1.0, ("basic", "person"))
        ]

    def test_correcting_a_missing_record_is_none(self, store):
        assert store.correct("b", "nothing.png", lambda r: decide(r, add=["x"])) is None

    def test_refused_correction_writes_nothing(self, store):
        store.put(record("b", "f.png", ("dog", 0.9)))

        def refuse(_record):
            raise BadInputError("no")

        with pytest.raises(BadInputError):
            store.correct("b", "f.png", refuse)
        assert store.get("b", "f.png").corrections is None

    def test_concurrent_corrections_and_retags_lose_nothing(self, store, index_keys):
        store.put(record("b", "race.png", ("dog", 0.9)))

        def corrector(n: int) -> None:
            store.correct("b", "race.png", lambda r: decide(r, add=[f"person{n}"], by=f"apikey:{n}"))

        def retagger(n: int) -> None:
            store.put(record("b", "race.png", (f"provider{n}", 0.5), ("dog", 0.9)))

        workers = [functools.partial(corrector, n) for n in range(6)]
        workers += [functools.partial(retagger, n) for n in range(4)]
        assert run_together(workers) == []
        final = store.get("b", "race.png")
        assert final.corrections.version == 6
        assert sorted(d.tag for d in final.corrections.log) == [f"person{n}" for n in range(6)]
        in_force = {t.key for t in final.tags_in_force}
        assert {f"person{n}" for n in range(6)} <= in_force
        assert {pk for pk, _ in index_keys()} == {tag_pk(name) for name in in_force}

    # --- the feed of recent images ----------------------------------------------------------------

    def test_recent_is_newest_first_by_status_with_pages(self, store):
        for i in range(5):
            store.put(
                record("b", f"n{i}.png", ("tree", 0.5), updated_at=datetime(2025, 1, 1, 0, i, tzinfo=UTC))
            )
        store.put(
            record(
                "b",
                "bad.png",
                status=ImageStatus.FAILED,
                error_code="corrupt_image",
                error="broken",
                updated_at=datetime(2025, 1, 2, tzinfo=UTC),
            )
        )
        seen: list[str] = []
        cursor = None
        while True:
            page = store.recent(ImageStatus.TAGGED, limit=2, cursor=cursor)
            seen.extend(i.key for i in page.items)
            cursor = page.cursor
            if cursor is None:
                break
        assert seen == [f"n{i}.png" for i in reversed(range(5))]
        (failed,) = store.recent(ImageStatus.FAILED).items
        assert (failed.key, failed.error_code, failed.error) == ("bad.png", "corrupt_image", "broken")

    def test_recent_moves_an_image_between_statuses_and_shows_corrections(self, store):
        store.put(record("b", "m.png", status=ImageStatus.FAILED, error_code="transient"))
        store.put(record("b", "m.png", ("dog", 0.9), ("cat", 0.4)))
        assert store.recent(ImageStatus.FAILED).items == []
        store.correct("b", "m.png", lambda r: decide(r, add=["puppy"], remove=["cat"]))
        (summary,) = store.recent(ImageStatus.TAGGED).items
        assert summary.corrected is True
        assert [t.name for t in summary.top_tags] == ["puppy", "dog"]

    def test_recent_refuses_a_cursor_of_another_status(self, store):
        for i in range(3):
            store.put(record("b", f"s{i}.png", ("x", 0.5)))
        cursor = store.recent(ImageStatus.TAGGED, limit=1).cursor
        assert cursor is not None
        with pytest.raises(BadInputError):
            store.recent(ImageStatus.FAILED, cursor=cursor)
        with pytest.raises(BadInputError):
            store.images_with_tag("x", cursor=cursor)

    def test_cache_hit_miss_and_expiry(self, store, clock):
        result = TagResult(tags=tags(("dog", 0.9)), title="t")
        assert store.cached_result("h1") is None
        store.cache_result("h1", result, ttl_seconds=60)
        assert store.cached_result("h1") == result
        assert store.cached_result("h2") is None
        clock.now += 61
        assert store.cached_result("h1") is None

    # --- Claims: the ordering rules of autotag.ordering, the same in every store -------------------

    def test_event_ordering_by_sequencer(self, store, clock):
        from autotag.ordering import Claim, Disposition, EventOrder, Refusal

        def claim(sequencer, *, replay=False):
            return store.claim("b", "k.jpg", EventOrder(sequencer=sequencer, replay=replay), lease_seconds=60)

        first = claim("0A")
        assert isinstance(first, Claim)
        assert first.previous is None
        # While it is held: the same event is busy (retry later), an older one is stale.
        busy = claim("0A")
        assert isinstance(busy, Refusal)
        assert busy.disposition is None
        assert busy.retry_after is not None
        assert claim("09").disposition is Disposition.STALE
        store.put(record("b", "k.jpg", ("dog", 0.9), sequencer="0A"), claim=first)
        assert store.get("b", "k.jpg").sequencer == "0A"

        duplicate = claim("0a")  # the same hex value, compared as S3 documents
        assert isinstance(duplicate, Refusal)
        assert duplicate.disposition is Disposition.DUPLICATE
        assert duplicate.record == store.get("b", "k.jpg")
        # Shorter sequencers are left-padded before comparing: 9 < 0A.
        assert claim("9").disposition is Disposition.STALE
        replay = claim("0A", replay=True)
        assert isinstance(replay, Claim)
        assert replay.previous == store.get("b", "k.jpg")
        store.release(replay)
        newer = claim("000B")
        assert isinstance(newer, Claim)
        store.put(
            record("b", "k.jpg", ("cat", 0.8), sequencer="000B", status=ImageStatus.FAILED), claim=newer
        )
        # A failed record does not absorb its event: a redrive (or a duplicate) is processed again.
        again = claim("0B")
        assert isinstance(again, Claim)
        store.release(again)
        assert [t.name for t in store.get("b", "k.jpg").tags] == ["cat"]

    def test_an_expired_claim_is_taken_over_and_the_late_writer_loses(self, store, clock):
        from autotag.errors import ClaimLostError
        from autotag.ordering import Claim, EventOrder

        slow = store.claim("b", "late.jpg", EventOrder(sequencer="01"), lease_seconds=10)
        assert isinstance(slow, Claim)
        clock.now += 11
        fast = store.claim("b", "late.jpg", EventOrder(sequencer="01"), lease_seconds=10)
        assert isinstance(fast, Claim)
        store.put(record("b", "late.jpg", ("dog", 0.9), sequencer="01"), claim=fast)
        with pytest.raises(ClaimLostError):
            store.put(record("b", "late.jpg", ("cat", 0.9), sequencer="01"), claim=slow)
        assert [t.name for t in store.get("b", "late.jpg").tags] == ["dog"]

    def test_a_released_first_claim_leaves_no_record(self, store):
        from autotag.ordering import Claim, EventOrder

        claim = store.claim("b", "never.jpg", EventOrder(), lease_seconds=10)
        assert isinstance(claim, Claim)
        assert store.get("b", "never.jpg") is None
        store.release(claim)
        assert store.get("b", "never.jpg") is None
        assert isinstance(store.claim("b", "never.jpg", EventOrder(sequencer="05"), lease_seconds=10), Claim)

    # --- Claimed writes: the record, its index and the cached result together ---------------------

    def test_claimed_retags_leave_exactly_the_records_index(self, store, index_keys):
        """The index reconciles with the record after every claimed write: items the record names
        exist, items it no longer names are gone (whatever the earlier writes were)."""
        import random

        from autotag.ordering import Claim, EventOrder
        from autotag.store.keys import index_entries

        rng = random.Random(14)
        names = ["dog", "cat", "sofa", "tree", "car", "sky", "Dog Bed"]
        for n in range(1, 13):
            claim = store.claim("b", "reconcile.jpg", EventOrder(sequencer=f"{n:04X}"), lease_seconds=30)
            assert isinstance(claim, Claim)
            picked = rng.sample(names, rng.randint(0, 5))
            status = ImageStatus.FAILED if n % 5 == 0 else ImageStatus.TAGGED
            pairs = [(name, round(rng.random(), 3)) for name in picked]
            store.put(record("b", "reconcile.jpg", *pairs, sequencer=f"{n:04X}", status=status), claim=claim)
            stored = store.get("b", "reconcile.jpg")
            expected_tags = stored.tags if stored.status is ImageStatus.TAGGED else ()
            expected = {(e.pk, e.sk) for e in index_entries("b", "reconcile.jpg", expected_tags)}
            assert index_keys() == expected, n
            for entry in index_entries("b", "reconcile.jpg", expected_tags):
                hits = store.images_with_tag(entry.tag).items
                assert [(h.key, h.confidence) for h in hits] == [("reconcile.jpg", entry.confidence)]

    def test_a_claimed_write_carries_the_cached_result(self, store):
        from autotag.ordering import Claim, EventOrder
        from autotag.store.base import CacheEntry

        result = TagResult(tags=tags(("dog", 0.9)), title="t")
        claim = store.claim("b", "cached.jpg", EventOrder(sequencer="01"), lease_seconds=30)
        assert isinstance(claim, Claim)
        store.put(record("b", "cached.jpg", ("dog", 0.9)), claim=claim, cache=CacheEntry("h9", result, 60))
        assert store.cached_result("h9") == result
        assert store.cached_results(["h9", "missing", "h9"]) == {"h9": result}
        assert store.cached_results([]) == {}

    # --- corrections and the claim ------------------------------------------------------------------

    def test_the_claim_returns_the_corrections(self, store):
        from autotag.ordering import Claim, EventOrder

        store.put(record("b", "cc.png", ("dog", 0.9), ("cat", 0.5), sequencer="01"))
        store.correct("b", "cc.png", lambda r: decide(r, remove=["cat"]))
        claim = store.claim("b", "cc.png", EventOrder(sequencer="02"), lease_seconds=60)
        assert isinstance(claim, Claim)
        assert claim.previous is not None
        assert claim.previous.corrections is not None
        assert [t.name for t in claim.previous.tags_in_force] == ["dog"]

    def test_a_correction_during_a_claim_waits_for_its_write_and_is_kept(self, store, index_keys):
        import threading

        from autotag.ordering import Claim, EventOrder

        store.put(record("b", "cw.png", ("dog", 0.9), sequencer="01"))
        claim = store.claim("b", "cw.png", EventOrder(sequencer="02"), lease_seconds=60)
        assert isinstance(claim, Claim)
        # A person corrects the image while the new upload is being tagged: it waits, then lands.
        done: list[object] = []
        person = threading.Thread(
            target=lambda: done.append(store.correct("b", "cw.png", lambda r: decide(r, add=["sunset"])))
        )
        person.start()
        person.join(0.3)
        assert done == []  # still waiting for the claimed write
        stored = store.put(record("b", "cw.png", ("bird", 0.8), sequencer="02"), claim=claim)
        assert stored.corrections is None
        person.join(10)
        assert len(done) == 1
        assert done[0] is not None
        got = store.get("b", "cw.png")
        assert got.corrections is not None
        assert got.corrections.version == 1
        assert [t.name for t in got.tags_in_force] == ["sunset", "bird"]
        assert {pk for pk, _ in index_keys()} == {tag_pk("sunset"), tag_pk("bird")}
        # The claim ended with its write: the next event for the key may claim.
        assert isinstance(store.claim("b", "cw.png", EventOrder(sequencer="03"), lease_seconds=60), Claim)

    def test_a_claim_only_item_cannot_be_corrected(self, store):
        from autotag.ordering import Claim, EventOrder

        claim = store.claim("b", "co.png", EventOrder(sequencer="01"), lease_seconds=60)
        assert isinstance(claim, Claim)
        assert store.correct("b", "co.png", lambda r: decide(r, add=["x"])) is None
        stored = store.put(record("b", "co.png", ("dog", 0.9), sequencer="01"), claim=claim)
        assert stored.corrections is None
