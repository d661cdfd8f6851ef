"""Image intake: accept an image in any supported form, check it cheaply, make it fit a provider.

What lives where:

- `autotag.intake.source` — `load_image`: bytes, a base64 string, a data URL or a file path in,
  checked bytes out.
- `autotag.intake.checks` — `inspect_image`: every check made before a pixel is decoded (size,
  format from magic bytes, header, bomb guard, integrity, decode memory, sha256).
- `autotag.intake.header` — the lazy header read and Pillow's failures mapped onto our errors.
- `autotag.intake.integrity` — truncation and corruption found without decoding pixels.
- `autotag.intake.content` — what non-image data looks like, for error messages.
- `autotag.intake.fit` — `fit`: pass through, or decode as little as possible, turn upright,
  downscale and re-encode until the payload fits a provider.
- `autotag.intake.decode_memory` — the decode-memory estimate and the per-process budget.

The image value types and the magic bytes (`sniff_format`) live in `autotag.image`.

Nothing here touches Pillow's global settings, so every function is safe to run in threads.

Decisions worth knowing:
- Pillow refuses images above twice its own MAX_IMAGE_PIXELS at open time whatever our limit says;
  that refusal is reported as our DecompressionBombError too.
- Decode memory is bounded in bytes: `inspect_image` refuses an image whose cheapest decode would
  not fit the budget (``image_too_large_to_decode``), and `fit` holds its decode's estimated peak
  from the process's one budget while it decodes and re-encodes.
- Every Pillow failure on input bytes (`autotag.intake.header.PILLOW_FAILURES`) is a
  CorruptImageError.
"""
