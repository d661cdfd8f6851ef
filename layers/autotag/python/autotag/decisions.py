"""What people decided about an image's tags: the versioned decision log and the tags in force.

Pure models and functions (no I/O), shared by the store (which keeps the log beside the provider
output) and :mod:`autotag.corrections` (which records decisions). See that module for the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from autotag.models import Tag, TagKind, tag_key

PERSON_PROVIDER = "person"
"""The provider name of tags people added (and the source a confirmed tag gains)."""
PERSON_CONFIDENCE = 1.0
MAX_CORRECTION_LOG = 200
"""Decisions kept per image; older ones are compacted to the latest decision per tag."""


class CorrectionAction(StrEnum):
    ADD = "add"
    REMOVE = "remove"


class TagDecision(BaseModel):
    """One person's decision about one tag."""

    model_config = ConfigDict(frozen=True)

    tag: str = Field(description="The tag as the person wrote it")
    action: CorrectionAction
    by: str = Field(description="Who decided: apikey:<API key id>, or the IAM/authorizer principal")
    at: datetime
    request_id: str | None = None
    sha256: str | None = Field(default=None, description="The image bytes the decision was made on")

    @property
    def key(self) -> str:
        return tag_key(self.tag)

    def applies_to(self, sha256: str | None) -> bool:
        return self.sha256 is None or sha256 is None or self.sha256 == sha256


class TagCorrections(BaseModel):
    """Every decision about an image's tags, oldest first; ``version`` counts the corrections."""

    model_config = ConfigDict(frozen=True)

    version: int = 0
    log: tuple[TagDecision, ...] = ()

    def in_force(self, sha256: str | None) -> dict[str, TagDecision]:
        """The latest decision per tag that applies to these bytes."""
        latest: dict[str, TagDecision] = {}
        for decision in self.log:
            if decision.applies_to(sha256):
                latest[decision.key] = decision
        return latest

    def with_decisions(self, decisions: Sequence[TagDecision]) -> TagCorrections:
        log = (*self.log, *decisions)
        if len(log) > MAX_CORRECTION_LOG:
            log = _compact(log)[-MAX_CORRECTION_LOG:]
        return TagCorrections(version=self.version + 1, log=log)


def _compact(log: Sequence[TagDecision]) -> tuple[TagDecision, ...]:
    """The latest decision per (tag, bytes), in log order."""
    last: dict[tuple[str, str | None], int] = {}
    for index, decision in enumerate(log):
        last[(decision.key, decision.sha256)] = index
    keep = set(last.values())
    return tuple(d for i, d in enumerate(log) if i in keep)


def effective_tags(
    tags: Sequence[Tag], corrections: TagCorrections | None, sha256: str | None
) -> tuple[Tag, ...]:
    """The tags in force: people's additions first, then the providers' tags they did not remove."""
    decisions = corrections.in_force(sha256) if corrections else {}
    if not decisions:
        return tuple(tags)
    by_key: dict[str, Tag] = {}
    for tag in tags:
        by_key.setdefault(tag.key, tag)
    added: list[Tag] = []
    for key, decision in decisions.items():
        if decision.action is not CorrectionAction.ADD:
            continue
        known = by_key.get(key)
        sources = tuple(dict.fromkeys((*(known.sources if known else ()), PERSON_PROVIDER)))
        added.append(
            Tag(
                name=known.name if known else decision.tag,
                confidence=PERSON_CONFIDENCE,
                provider=PERSON_PROVIDER,
                kind=known.kind if known else TagKind.LABEL,
                names=known.names if known else {},
                categories=known.categories if known else (),
                parents=known.parents if known else (),
                aliases=known.aliases if known else (),
                boxes=known.boxes if known else (),
                sources=sources,
            )
        )
    kept = [t for t in tags if t.key not in decisions]
    return (*added, *kept)
