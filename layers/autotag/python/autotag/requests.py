"""What a tagging request names, whichever way it comes (the API's ``s3`` source, a ``Tag Image
Requested`` event): the rules for the S3 object it points at. The API's models
(:mod:`autotag.api.models`) and the event subscriber (:mod:`autotag.subscriber`) both take them
from here; the options of a request are :class:`autotag.models.TagOptions`."""

from __future__ import annotations

S3_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"
"""The bucket names S3 allows (3 to 63 lower-case letters, digits, dots and hyphens)."""
