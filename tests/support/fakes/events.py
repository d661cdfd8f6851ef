"""An in-memory :class:`autotag.events.EventPublisher`: keeps each event's detail as sent."""

from __future__ import annotations

import json
import threading
from typing import Any

from autotag.events import EventDetail


class InMemoryPublisher:
    """EventPublisher fake: keeps (detail type, detail) pairs, the detail as its JSON would read."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def publish(self, detail: EventDetail) -> None:
        with self._lock:
            self.events.append((detail.detail_type, json.loads(detail.model_dump_json())))

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        return [d for t, d in self.events if t == detail_type]
