"""What data that is not an image we accept looks like, named for error messages."""

from __future__ import annotations

_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"%PDF", "PDF (application/pdf)"),
    (0, b"PK\x03\x04", "a ZIP archive (application/zip)"),
    (0, b"\x1f\x8b", "gzip data (application/gzip)"),
    (0, b"8BPS", "a Photoshop document (image/vnd.adobe.photoshop)"),
    (0, b"\x00\x00\x01\x00", "an icon (image/x-icon)"),
    (0, b"II+\x00", "BigTIFF (not supported)"),
    (0, b"MM\x00+", "BigTIFF (not supported)"),
    (0, b"\xff\x0a", "JPEG XL (image/jxl)"),
    (0, b"\x00\x00\x00\x0cJXL ", "JPEG XL (image/jxl)"),
    (0, b"\x00\x00\x00\x0cjP  ", "JPEG 2000 (image/jp2)"),
    (0, b"%!PS", "PostScript (application/postscript)"),
    (0, b"\x7fELF", "an executable (application/x-elf)"),
    (0, b"RIFF", "a RIFF container that is not WebP (e.g. audio/wav)"),
    (0, b"GIF8", "a damaged GIF header"),
    (0, b"\x89PNG", "a damaged PNG header"),
    (0, b"\xff\xd8", "a damaged JPEG header"),
)
_FTYP_BRANDS = {
    b"heic": "HEIC (image/heic)",
    b"heix": "HEIC (image/heic)",
    b"mif1": "HEIF (image/heif)",
    b"msf1": "HEIF (image/heif)",
    b"avif": "AVIF (image/avif)",
    b"avis": "AVIF (image/avif)",
}


def describe_content(data: bytes) -> str:
    """A human description of what non-image data looks like, for error messages."""
    for offset, magic, name in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return name
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        return _FTYP_BRANDS.get(brand, f"an ISO media file ({brand.decode('latin-1')!r})")
    text = _as_text(data[:1024])
    if text is not None:
        lowered = text.lstrip("\ufeff \t\r\n").lower()
        if lowered.startswith("<svg") or (lowered.startswith("<?xml") and "<svg" in lowered):
            return "SVG (image/svg+xml)"
        if lowered.startswith(("<!doctype html", "<html")):
            return "HTML (text/html)"
        if lowered.startswith("<?xml"):
            return "XML (application/xml)"
        if lowered.startswith(("{", "[")):
            return "JSON or other text (application/json)"
        printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text)
        if printable >= 0.95 * max(1, len(text)):
            return "text (text/plain)"
    return "unrecognized binary data (application/octet-stream)"


def _as_text(sample: bytes) -> str | None:
    # The sample may end inside a multi-byte character: allow up to 3 bytes of one to be cut off.
    for cut in range(4):
        try:
            return sample[: len(sample) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None
