"""autotag.cacheround: a batch's cache lookups in one read, without waiting on stragglers for long."""

from __future__ import annotations

import threading
import time

import pytest
from autotag.cacheround import CacheRound, RoundLookup
from autotag.models import TagResult

HIT = TagResult(title="cached")


class Reads:
    def __init__(self, known: dict[str, TagResult] | None = None, fail: bool = False) -> None:
        self.requests: list[list[str]] = []
        self.known = known or {}
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, keys: list[str]) -> dict[str, TagResult]:
        with self._lock:
            self.requests.append(sorted(keys))
        if self.fail:
            raise RuntimeError("read refused")
        return {k: v for k, v in self.known.items() if k in keys}


def run_all(round_: CacheRound, work: list) -> list:
    lookups = [RoundLookup(round_, round_.join()) for _ in work]  # joined before any starts
    results: list = [None] * len(work)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = work[i](lookups[i])
        except BaseException as error:
            errors.append(error)
        finally:
            lookups[i].skip()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    if errors:
        raise errors[0]
    return results


def test_every_object_on_the_way_is_answered_by_one_read():
    reads = Reads({"k1": HIT})
    round_ = CacheRound(reads, max_wait=5.0)
    results = run_all(round_, [lambda lk, i=i: lk.get(f"k{i}") for i in range(6)])
    assert results == [None, HIT, None, None, None, None]
    assert reads.requests == [[f"k{i}" for i in range(6)]]


def test_objects_that_leave_early_are_not_waited_for():
    reads = Reads()
    round_ = CacheRound(reads, max_wait=5.0)
    started = time.monotonic()
    work = [lambda lk: None, lambda lk: lk.get("a"), lambda lk: None, lambda lk: lk.get("b")]
    run_all(round_, work)
    assert time.monotonic() - started < 2.0
    assert reads.requests == [["a", "b"]]


def test_a_straggler_is_not_waited_for_past_the_limit():
    reads = Reads({"fast": HIT})
    round_ = CacheRound(reads, max_wait=0.1)
    gate = threading.Event()

    def slow(lk):
        gate.wait(5)  # still reading its object
        return lk.get("slow")

    def fast(lk):
        try:
            return lk.get("fast")
        finally:
            gate.set()

    assert run_all(round_, [fast, slow]) == [HIT, None]
    assert reads.requests == [["fast"], ["slow"]]


def test_a_failed_read_raises_in_every_waiting_thread():
    round_ = CacheRound(Reads(fail=True), max_wait=5.0)
    with pytest.raises(RuntimeError, match="read refused"):
        run_all(round_, [lambda lk: lk.get("x"), lambda lk: lk.get("y")])


def test_after_its_round_a_lookup_reads_alone():
    reads = Reads({"k": HIT})
    round_ = CacheRound(reads)
    lookup = RoundLookup(round_, round_.join())
    assert lookup.get("k") == HIT
    assert lookup.get("k") == HIT
    assert reads.requests == [["k"], ["k"]]
