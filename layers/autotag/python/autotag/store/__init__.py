"""Where results live: image records, the tag index and the content-hash cache."""

from autotag.store.base import ImageRecord, ImageStatus, ImageStore, Page, S3TagWrite, TagHit

__all__ = ["ImageRecord", "ImageStatus", "ImageStore", "Page", "S3TagWrite", "TagHit"]
