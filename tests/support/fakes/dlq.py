"""An in-memory :class:`autotag.dlq.DeadLetterQueue`: keeps the letters sent."""

from __future__ import annotations

import threading

from autotag.dlq import DeadLetter


class InMemoryDeadLetterQueue:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []
        self._lock = threading.Lock()

    def send(self, letter: DeadLetter) -> None:
        with self._lock:
            self.letters.append(letter)
