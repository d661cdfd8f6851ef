"""Thumbnails made on the fly from the stored object, for the web console.

Chosen over thumbnails written by the pipeline under a derived prefix by measurement (``python -m
bench thumbnails``, figures in docs/console.md): a thumbnail of a typical photo is made in tens of
milliseconds (JPEG draft decoding scales by 1/2..1/8 inside libjpeg), which the browser then caches,
while stored thumbnails would add a write per tagged image, storage, a prefix the upload trigger
must never tag, and deletes to keep in step with the originals.
"""

from __future__ import annotations

from autotag.image import ImageConstraints, ImageFormat, PreparedImage, SourceImage
from autotag.intake.fit import fit

THUMBNAIL_SIDES = (128, 256, 512, 1024)
"""The sizes served (longest side, pixels); few and fixed, so browser and CDN caches hit."""
DEFAULT_THUMBNAIL_SIDE = 256
BROWSER_FORMATS = frozenset({ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.WEBP, ImageFormat.GIF})
"""What every browser displays; BMP and TIFF are re-encoded."""


def thumbnail(image: SourceImage, side: int = DEFAULT_THUMBNAIL_SIDE) -> PreparedImage:
    """The image upright within side x side pixels, in a format browsers display, at most ~1 byte
    per pixel of the box (small images that already fit pass through untouched)."""
    constraints = ImageConstraints(
        max_side=side,
        useful_side=side,
        formats=BROWSER_FORMATS,
        max_bytes=max(64 * 1024, side * side),
    )
    return fit(image, constraints)
