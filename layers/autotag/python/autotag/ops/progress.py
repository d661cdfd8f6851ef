"""A progress bar on stderr: done/total, rate and ETA. Redraws in place on a terminal; elsewhere
(CI logs, pipes) prints a line every few seconds instead of flooding."""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 28


def _duration(seconds: float) -> str:
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    def __init__(
        self,
        total: int | None,
        *,
        label: str = "",
        stream: TextIO | None = None,
        interactive: bool | None = None,
        line_interval: float = 2.0,
    ) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.line_interval = line_interval
        self.started = time.monotonic()
        self._last_draw = 0.0
        self.notes = ""

    def advance(self, count: int = 1, *, notes: str | None = None) -> None:
        self.done += count
        if notes is not None:
            self.notes = notes
        now = time.monotonic()
        interval = 0.1 if self.interactive else self.line_interval
        if now - self._last_draw >= interval:
            self._draw(now)

    def render(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(1e-6, now - self.started)
        rate = self.done / elapsed
        if self.total:
            fraction = min(1.0, self.done / self.total)
            filled = int(fraction * BAR_WIDTH)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            remaining = (self.total - self.done) / rate if rate > 0 else float("inf")
            eta = _duration(remaining) if remaining != float("inf") else "?"
            head = f"[{bar}] {self.done}/{self.total} {fraction:4.0%}"
        else:
            head, eta = f"{self.done}", "?"
        parts = [p for p in (self.label, head, f"{rate:.1f}/s", f"ETA {eta}", self.notes) if p]
        return "  ".join(parts)

    def _draw(self, now: float) -> None:
        self._last_draw = now
        text = self.render(now)
        if self.interactive:
            self.stream.write("\r\x1b[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        now = time.monotonic()
        text = self.render(now).replace("ETA 0:00", f"in {_duration(now - self.started)}")
        self.stream.write(("\r\x1b[K" if self.interactive else "") + text + "\n")
        self.stream.flush()
