"""One content-hash cache read for a whole SQS batch: the objects' lookups gathered into one
BatchGetItem instead of one GetItem each.

The batch's objects run at once, each in its own thread, and each reaches its cache lookup after
its claim and its GET. A :class:`CacheRound` knows who is still on the way: every object *joins*
when it starts and either *looks up* a key or *leaves* (a duplicate, a stale event, an object that
fails before tagging, or one done). When every object still on the way is waiting with a key, the
last to arrive sends one read for all of them (:meth:`ImageStore.cached_results`) and hands each its
answer. Nobody waits on a straggler for long: after ``max_wait`` seconds a waiter takes its key out
of the round and reads it alone, so the round costs at most that much latency and never deadlocks
(an object queued behind an earlier event of the same key joins only when it starts).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from autotag.models import TagResult

DEFAULT_MAX_WAIT_SECONDS = 0.25
"""How long a lookup waits for the rest of the batch (a GET of an image takes tens of ms)."""


@dataclass(eq=False)
class Ticket:
    """One object's place in the round."""

    key: str | None = None
    done: bool = False
    answered: bool = False
    result: TagResult | None = None
    error: BaseException | None = field(default=None, repr=False)


class CacheRound:
    """See the module docstring. ``read_many`` answers many cache keys at once (absent: a miss)."""

    def __init__(
        self,
        read_many: Callable[[list[str]], dict[str, TagResult]],
        *,
        max_wait: float = DEFAULT_MAX_WAIT_SECONDS,
    ) -> None:
        self._read_many = read_many
        self._max_wait = max_wait
        self._cond = threading.Condition()
        self._active: set[Ticket] = set()
        self._waiting: list[Ticket] = []
        self.reads = 0
        """Reads sent (for tests and figures)."""

    def join(self) -> Ticket:
        ticket = Ticket()
        with self._cond:
            self._active.add(ticket)
        return ticket

    def leave(self, ticket: Ticket) -> None:
        """The object will not look anything up (any more): the others stop waiting for it."""
        with self._cond:
            if ticket.done:
                return
            ticket.done = True
            self._active.discard(ticket)
            batch = self._take_if_complete()
        if batch:
            self._send(batch)

    def lookup(self, ticket: Ticket, key: str) -> TagResult | None:
        """The cached result for `key`, read with the rest of the round (or alone after the wait)."""
        with self._cond:
            if ticket.done:  # not (or no longer) part of a round: read alone
                alone = True
            else:
                alone = False
                ticket.key = key
                self._waiting.append(ticket)
                batch = self._take_if_complete()
        if alone:
            return self._read_alone(key)
        if batch:
            self._send(batch)
        deadline = time.monotonic() + self._max_wait
        with self._cond:
            while not ticket.answered:
                remaining = deadline - time.monotonic()
                if remaining <= 0 and ticket in self._waiting:
                    # Stragglers: read alone rather than wait longer.
                    self._waiting.remove(ticket)
                    ticket.done = True
                    self._active.discard(ticket)
                    batch = self._take_if_complete()
                    break
                self._cond.wait(timeout=max(remaining, 0.01))
            else:
                if ticket.error is not None:
                    raise ticket.error
                return ticket.result
        if batch:
            self._send(batch)
        return self._read_alone(key)

    def _read_alone(self, key: str) -> TagResult | None:
        self.reads += 1
        return self._read_many([key]).get(key)

    def _take_if_complete(self) -> list[Ticket]:
        """(Under the lock.) The waiting tickets, if every active one is waiting."""
        if self._waiting and len(self._waiting) == len(self._active):
            batch, self._waiting = self._waiting, []
            for ticket in batch:
                ticket.done = True
                self._active.discard(ticket)
            return batch
        return []

    def _send(self, batch: list[Ticket]) -> None:
        keys = list(dict.fromkeys(t.key for t in batch if t.key is not None))
        self.reads += 1
        error: BaseException | None = None
        found: dict[str, TagResult] = {}
        try:
            found = self._read_many(keys)
        except BaseException as exc:  # each waiter raises it in its own thread
            error = exc
        with self._cond:
            for ticket in batch:
                ticket.result = found.get(ticket.key or "")
                ticket.error = error
                ticket.answered = True
            self._cond.notify_all()


@dataclass(frozen=True)
class RoundLookup:
    """One object's handle on the round: what the tagging service is given."""

    round: CacheRound
    ticket: Ticket

    def get(self, key: str) -> TagResult | None:
        return self.round.lookup(self.ticket, key)

    def skip(self) -> None:
        """This object will not look anything up (any more)."""
        self.round.leave(self.ticket)
