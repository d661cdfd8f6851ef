"""S3 object tags: merge autotag's labels into an object's tag set without touching the user's.

Policy (``autotag.config.S3TagPolicy``):
- autotag owns only the tags it recorded writing (the image record's ``s3_tags.written``: key and
  value) that are still on the object as written. Every other tag is the user's and is kept as it
  is, always, even one whose key starts with ``key_prefix``.
- autotag writes one object tag per label: key ``{prefix}{label}``, value the confidence with two
  decimals (empty when the provider gives none), best labels first, at most ``max_tags`` and never
  more than the slots the user's tags leave free (S3 allows 10 tags per object).
- A re-tag replaces the tags autotag owns (ones no longer wanted are removed). A tag autotag would
  write is *dropped* when the user already has a tag with that key (the user's stays), or when the
  user's tags leave no free slot; every removed and dropped tag is reported (``S3TagWrite``).
- The object's tag set is read before it is written (S3 has no conditional tag write), except when
  the GET that read the object version said it has no tags (``x-amz-tagging-count`` absent): then
  there is nothing of the user's to keep and the read is skipped. A tag someone else puts on that
  version between the GET and autotag's write (the provider call, typically under a second) is
  replaced; with the read, the same holds between the read and the write.
- Keys and values are cut to S3's lengths (128 / 256 characters) and to the characters S3 accepts:
  Unicode letters and digits, spaces and ``+ - = . _ : / @`` (S3 tags are UTF-8; the AWS tag pattern
  is ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]``). Any other character becomes a space, runs of spaces collapse.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autotag.config import S3_MAX_OBJECT_TAGS, S3TagPolicy
from autotag.errors import ObjectGoneError, TagWriteRefusedError
from autotag.image import S3Location
from autotag.models import Tag
from autotag.objects import ObjectStorage
from autotag.store.base import DroppedTag, DroppedTagReason, S3TagWrite

MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 256
_PUNCTUATION = frozenset("+-=._:/@")


def _allowed(char: str) -> bool:
    return char == " " or char in _PUNCTUATION or unicodedata.category(char)[0] in ("L", "N")


def sanitize(text: str, max_chars: int) -> str:
    """Text made S3-tag-legal: illegal characters become spaces, whitespace collapses, cut to length."""
    cleaned = "".join(c if _allowed(c) else " " for c in unicodedata.normalize("NFC", text))
    return " ".join(cleaned.split())[:max_chars].rstrip()


def confidence_value(confidence: float | None) -> str:
    return "" if confidence is None else f"{confidence:.2f}"


def desired_tags(tags: Sequence[Tag], policy: S3TagPolicy, *, slots: int) -> dict[str, str]:
    """autotag's object tags for `tags` (ranked best first), at most min(slots, policy.max_tags)."""
    limit = min(slots, policy.max_tags)
    wanted: dict[str, str] = {}
    room = MAX_KEY_CHARS - len(policy.key_prefix)
    # The pipeline's order is the ranking (people's decisions, then content, then attributes such as
    # orientation or colour, each by confidence): a re-sort by confidence alone would fill the slots
    # with `basic`'s certain but least telling tags.
    for tag in tags:
        if len(wanted) >= limit:
            break
        if tag.confidence is not None and tag.confidence < policy.min_confidence:
            continue
        name = sanitize(tag.name, room)
        key = policy.key_prefix + name
        if not name or key in wanted:
            continue
        wanted[key] = confidence_value(tag.confidence)
    return wanted


@dataclass(frozen=True)
class TagSetPlan:
    tag_set: dict[str, str]
    """The object's complete new tag set: the user's tags, then autotag's."""
    write: S3TagWrite
    changed: bool


def plan_tag_set(
    current: Mapping[str, str],
    tags: Sequence[Tag],
    policy: S3TagPolicy,
    *,
    owned: Mapping[str, str] | None = None,
) -> TagSetPlan:
    """The merge, as a pure function of the object's current tag set, the labels and the tags
    autotag recorded writing before (``owned``: key -> value)."""
    owned = owned or {}
    ours_before = {k: v for k, v in current.items() if k in owned and owned[k] == v}
    user = {k: v for k, v in current.items() if k not in ours_before}
    candidates = desired_tags(tags, policy, slots=policy.max_tags)
    dropped: list[DroppedTag] = []
    free = [(k, v) for k, v in candidates.items() if k not in user]
    dropped.extend(
        DroppedTag(key=k, value=v, reason=DroppedTagReason.USER_TAG)
        for k, v in candidates.items()
        if k in user
    )
    slots = max(0, S3_MAX_OBJECT_TAGS - len(user))
    ours = dict(free[:slots])
    dropped.extend(DroppedTag(key=k, value=v, reason=DroppedTagReason.TAG_LIMIT) for k, v in free[slots:])
    reason = None
    if free and slots == 0:
        reason = f"no free tag slots: {len(user)} user tags (S3 allows {S3_MAX_OBJECT_TAGS})"
    elif len(ours) < len(free):
        reason = f"{len(ours)} of {len(free)} tags written: {len(user)} user tags leave {slots} free slots"
    elif any(d.reason is DroppedTagReason.USER_TAG for d in dropped):
        reason = "the user's own tags with the same keys were kept"
    elif not candidates and tags:
        reason = (
            f"no tag qualifies (below the minimum confidence {policy.min_confidence} "
            "or no S3-legal characters in the name)"
        )
    elif not tags:
        reason = "no tags to write"
    tag_set = {**user, **ours}
    return TagSetPlan(
        tag_set=tag_set,
        write=S3TagWrite(
            written=ours,
            removed=tuple(sorted(set(ours_before) - set(ours))),
            dropped=tuple(dropped),
            user_tags_kept=len(user),
            reason=reason,
        ),
        changed=tag_set != dict(current),
    )


class ObjectTagWriter:
    """Reads an object's tag set, merges autotag's labels in, writes it back (same version)."""

    def __init__(self, objects: ObjectStorage) -> None:
        self._objects = objects

    def apply(
        self,
        location: S3Location,
        tags: Sequence[Tag],
        policy: S3TagPolicy,
        *,
        owned: Mapping[str, str] | None = None,
        tag_count: int | None = None,
    ) -> S3TagWrite:
        """``owned``: the tags autotag recorded writing on this object before (the record's).
        ``tag_count``: how many tags the object version has, when the GET that read it said so
        (:attr:`autotag.objects.ObjectInfo.tag_count`); at 0 there is nothing of the user's to
        merge and the tag set is not read (one GetObjectTagging less). Only for a ``location``
        naming its version: the write then lands on the version the GET counted, whereas a key
        alone may name a newer object by then (an unversioned bucket), whose tags must be read."""
        if not policy.enabled:
            return S3TagWrite(reason="S3 object tagging is disabled")
        try:
            if tag_count == 0 and location.version_id:
                current: dict[str, str] = {}
            else:
                current = self._objects.get_tags(location)
            plan = plan_tag_set(current, tags, policy, owned=owned)
            if plan.changed:
                self._objects.put_tags(location, plan.tag_set)
        except ObjectGoneError:
            return S3TagWrite(reason="object no longer exists")
        except TagWriteRefusedError as error:
            # Tagging is a courtesy on top of the stored record; refusal is recorded, not fatal.
            return S3TagWrite(reason=error.message)
        return plan.write
