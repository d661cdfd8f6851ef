"""An in-memory :class:`autotag.store.base.ImageStore`: the same keys, ordering and cursors as DynamoDB."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from autotag.errors import ClaimLostError, ConflictError
from autotag.models import TagResult
from autotag.ordering import Claim, EventOrder, Refusal, decide, normalize_sequencer
from autotag.store.base import (
    CORRECTION_WAIT_SECONDS,
    CacheEntry,
    CorrectionUpdate,
    ImageRecord,
    ImageStatus,
    ImageSummary,
    Page,
    TagHit,
)
from autotag.store.keys import (
    check_limit,
    decode_cursor,
    decode_feed_cursor,
    encode_cursor,
    encode_feed_cursor,
    feed_pk,
    feed_sk,
    image_pk,
    index_entries,
    tag_pk,
)


@dataclass(frozen=True)
class _Lease:
    token: str
    until: float
    sequencer: str | None


@dataclass(frozen=True)
class _CacheEntry:
    result: TagResult
    expires_at: float


class InMemoryImageStore:
    """Thread-safe; keeps what DynamoDB would keep, including the tag index items."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.records: dict[tuple[str, str], ImageRecord] = {}
        self.index: dict[str, dict[str, TagHit]] = {}
        self._index_keys: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self._cache: dict[str, _CacheEntry] = {}
        self.leases: dict[tuple[str, str], _Lease] = {}
        self.claims_taken = 0

    def get(self, bucket: str, key: str) -> ImageRecord | None:
        with self._lock:
            return self.records.get((bucket, key))

    def claim(self, bucket: str, key: str, order: EventOrder, *, lease_seconds: float) -> Claim | Refusal:
        image = (bucket, key)
        now = self._clock()
        with self._lock:
            record = self.records.get(image)
            lease = self.leases.get(image)
            refusal = decide(
                order,
                record=record,
                stored_sequencer=normalize_sequencer(record.sequencer) if record else None,
                claim_until=lease.until if lease else None,
                claim_sequencer=lease.sequencer if lease else None,
                now=now,
            )
            if refusal is not None:
                return refusal
            claim = Claim(bucket=bucket, key=key, order=order, until=now + lease_seconds, previous=record)
            self.leases[image] = _Lease(claim.token, claim.until, order.normalized)
            self.claims_taken += 1
            return claim

    def release(self, claim: Claim) -> None:
        with self._lock:
            lease = self.leases.get((claim.bucket, claim.key))
            if lease is not None and lease.token == claim.token:
                del self.leases[(claim.bucket, claim.key)]

    def put(
        self, record: ImageRecord, *, claim: Claim | None = None, cache: CacheEntry | None = None
    ) -> ImageRecord:
        image = (record.bucket, record.key)
        with self._lock:
            if claim is not None:
                lease = self.leases.get(image)
                if lease is None or lease.token != claim.token:
                    raise ClaimLostError(f"{record.bucket}/{record.key}")
                del self.leases[image]
            current = self.records.get(image)
            # The provider output is replaced; people's decisions stay as stored (under the lock, a
            # correction made while the claim was held is among them).
            stored = record.model_copy(update={"corrections": current.corrections if current else None})
            self._store(stored)
            if cache is not None:
                self._cache[cache.key] = _CacheEntry(cache.result, self._clock() + cache.ttl_seconds)
            return stored

    def correct(self, bucket: str, key: str, update: CorrectionUpdate) -> ImageRecord | None:
        # As in DynamoDB: never while the image is being tagged (a live lease); wait for its write.
        deadline = time.monotonic() + CORRECTION_WAIT_SECONDS
        while True:
            with self._lock:
                current = self.records.get((bucket, key))
                if current is None:
                    return None
                lease = self.leases.get((bucket, key))
                if lease is None or lease.until < self._clock():
                    # Under the lock: no other writer can land between the read and the write.
                    stored = current.model_copy(update={"corrections": update(current)})
                    self._store(stored)
                    return stored
            if time.monotonic() >= deadline:
                raise ConflictError(f"image {bucket}/{key} is being tagged; try the correction again")
            time.sleep(0.01)

    def _store(self, record: ImageRecord) -> None:
        image = (record.bucket, record.key)
        tags = record.tags_in_force if record.status is ImageStatus.TAGGED else ()
        entries = index_entries(record.bucket, record.key, tags)
        for pk, sk in self._index_keys.pop(image, []):
            partition = self.index.get(pk, {})
            partition.pop(sk, None)
            if not partition:
                self.index.pop(pk, None)
        for entry in entries:
            self.index.setdefault(entry.pk, {})[entry.sk] = TagHit(
                **record.ref(),
                tag=entry.tag,
                confidence=entry.confidence,
                providers=entry.providers,
                updated_at=record.updated_at,
            )
        self._index_keys[image] = [(e.pk, e.sk) for e in entries]
        self.records[image] = record

    def recent(
        self, status: ImageStatus, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ImageSummary]:
        check_limit(limit)
        partition = feed_pk(status.value)
        with self._lock:
            feed = sorted(
                (
                    (feed_sk(r.updated_at.isoformat(), r.bucket, r.key), image_pk(r.bucket, r.key), r)
                    for r in self.records.values()
                    if r.status is status
                ),
                key=lambda entry: (entry[0], entry[1]),
                reverse=True,
            )
        if cursor is not None:
            _, after_sort, after_pk = decode_feed_cursor(cursor, expected_feed_pk=partition)
            feed = [e for e in feed if (e[0], e[1]) < (after_sort, after_pk)]
        page, more = feed[:limit], len(feed) > limit
        last = page[-1] if page else None
        return Page[ImageSummary](
            items=[ImageSummary.of(r) for _, _, r in page],
            cursor=encode_feed_cursor(partition, last[0], last[1]) if more and last else None,
        )

    def images_with_tag(self, tag: str, *, limit: int = 50, cursor: str | None = None) -> Page[TagHit]:
        check_limit(limit)
        pk = tag_pk(tag)
        after = decode_cursor(cursor, expected_pk=pk)[1] if cursor is not None else None
        with self._lock:
            partition = dict(self.index.get(pk, {}))
        keys = sorted(sk for sk in partition if after is None or sk > after)
        page = keys[:limit]
        more = len(keys) > limit
        return Page[TagHit](
            items=[partition[sk] for sk in page],
            cursor=encode_cursor(pk, page[-1]) if more and page else None,
        )

    def cached_result(self, cache_key: str) -> TagResult | None:
        with self._lock:
            entry = self._cache.get(cache_key)
        if entry is None or entry.expires_at <= self._clock():
            return None
        return entry.result

    def cached_results(self, cache_keys: list[str]) -> dict[str, TagResult]:
        found = {key: self.cached_result(key) for key in cache_keys}
        return {key: result for key, result in found.items() if result is not None}

    def cache_result(self, cache_key: str, result: TagResult, *, ttl_seconds: int) -> None:
        with self._lock:
            self._cache[cache_key] = _CacheEntry(result, self._clock() + ttl_seconds)

    def index_item_count(self) -> int:
        """Every index item held (a test's check that nothing stale is left)."""
        with self._lock:
            return sum(len(p) for p in self.index.values())
