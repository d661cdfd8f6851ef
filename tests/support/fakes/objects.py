"""An in-memory :class:`autotag.objects.ObjectStorage`: S3's answers for the cases the code handles."""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autotag.errors import ImageTooLargeError, InvalidS3ReferenceError, ObjectGoneError, TransientError
from autotag.image import S3Location
from autotag.objects import ObjectInfo, OpenedObject


@dataclass
class StoredObject:
    data: bytes
    content_type: str | None = "image/jpeg"
    tags: dict[str, str] = field(default_factory=dict)
    version_id: str | None = None
    etag: str = "etag"


class InMemoryObjectStorage:
    """ObjectStorage fake: objects by (bucket, key); counts reads and tag writes.

    Like S3, a version id other than ``null`` for an object stored without versions (an
    unversioned bucket) is refused as an invalid reference, and reading an unversioned object whose
    ETag no longer matches the one asked for fails as a transient error (S3's 412 to ``If-Match``)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self.reads = 0
        self.tag_writes = 0
        self._lock = threading.Lock()

    def add(self, bucket: str, key: str, data: bytes, **fields: Any) -> StoredObject:
        stored = StoredObject(data=data, **fields)
        self.objects[(bucket, key)] = stored
        return stored

    def _find(self, location: S3Location) -> StoredObject | None:
        stored = self.objects.get((location.bucket, location.key))
        version = location.version_id
        if stored is not None and stored.version_id is None and version not in (None, "null"):
            raise InvalidS3ReferenceError(
                f"S3 refused the reference {location.uri} version {version!r} (InvalidArgument)"
            )
        if stored is None or (version and version != (stored.version_id or "null")):
            return None
        return stored

    def head(self, location: S3Location) -> ObjectInfo | None:
        stored = self._find(location)
        if stored is None:
            return None
        return ObjectInfo(len(stored.data), stored.content_type, stored.etag, stored.version_id)

    def open(self, location: S3Location) -> OpenedObject | None:
        stored = self._find(location)
        if stored is None:
            return None
        info = ObjectInfo(
            len(stored.data), stored.content_type, stored.etag, stored.version_id, tag_count=len(stored.tags)
        )
        return OpenedObject(info, io.BytesIO(stored.data), on_read=self._count_read)

    def _count_read(self) -> None:
        with self._lock:
            self.reads += 1

    def read(self, location: S3Location, *, etag: str | None, max_bytes: int) -> bytes:
        stored = self._find(location)
        if stored is None:
            raise ObjectGoneError(location.uri)
        if etag and not location.version_id and etag != stored.etag:
            raise TransientError(f"{location.uri} changed while being read")
        with self._lock:
            self.reads += 1
        if len(stored.data) > max_bytes:
            raise ImageTooLargeError(f"object is larger than the limit of {max_bytes} bytes")
        return stored.data

    def get_tags(self, location: S3Location) -> dict[str, str]:
        stored = self._find(location)
        if stored is None:
            raise ObjectGoneError(location.uri)
        return dict(stored.tags)

    def put_tags(self, location: S3Location, tags: Mapping[str, str]) -> None:
        stored = self._find(location)
        if stored is None:
            raise ObjectGoneError(location.uri)
        with self._lock:
            self.tag_writes += 1
        stored.tags = dict(tags)
