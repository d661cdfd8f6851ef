"""Benchmark: peak RSS of a tag_api worker on the worst accepted image of each format and mode.
Not a test (the guard's refusals are tested in tests/unit/test_decode_memory.py).

    uv run python -m bench.bench_memory            # every format and mode (about 3 minutes)
    uv run python -m bench.bench_memory --only PNG  # one format

For each (format, mode) the decode-memory guard prices (autotag.intake.decode_memory), it makes the
largest image the guard accepts for a 1,024 MB function (budget 256 MiB), also within the pixel
and byte limits; a JPEG's worst case is the largest one still decoded at full scale (3199 px: a
larger one is decoded at 1/2 or less). Then, per case and per provider kind, a fresh child process
imports the tag_api handler (the worker's code and clients), reads the file and runs intake +
fit: "jpeg" is a provider that takes JPEG only (everything is decoded, flattened and re-encoded),
"png-256" one like `basic` (PNG at 256 px, alpha kept), and for JPEGs (which a JPEG provider
takes untouched) "png", a provider taking PNG only. The child's peak RSS (getrusage
ru_maxrss; this process writes the images in other children and stays small, as Linux carries a
parent's peak into a forked child's ru_maxrss) is the figure. The files of the report (16-bit
greyscale PNG 9999 x 9999, one-strip float TIFF 9999 x 9999, RGBA PNG near the pixel limit) are
run too: they must now be refused, cheaply.

Prints one line per case and writes bench/results/memory.json. Exits 1 when an accepted case
peaks over 512 MiB, when the decode grew past the guard's estimate, or a report file is accepted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from bench.common import ROOT, loopback_environment, write_result
from tests.support.loopback_env import LOOPBACK_AWS_ENV

loopback_environment()

from autotag.config import ImageLimits  # noqa: E402
from autotag.errors import DecodeMemoryError  # noqa: E402
from autotag.image import ImageFormat  # noqa: E402
from autotag.intake.decode_memory import (  # noqa: E402
    FIXED_OVERHEAD_BYTES,
    MIB,
    PALETTE_WITH_TRANSPARENCY_BYTES_PER_PIXEL,
    PEAK_BYTES_PER_PIXEL,
    decode_budget_bytes,
    estimate,
)
from autotag.intake.source import load_image  # noqa: E402
from PIL import Image  # noqa: E402

from tests.support.images import PNG_GREY, PNG_RGBA, TIFF_FLOAT, png_header_only, tiff_header_only  # noqa: E402

FUNCTION_MEMORY_MB = 1024
WORKER_LIMIT_MIB = 512
JPEG_FULL_SCALE_SIDE = 3199
"""The intake decodes a JPEG at the smallest DCT scale keeping 1,600 px: up to 3,199 px is full scale."""

# Pillow mode to create -> colour, per format (the mode as read back is what the guard prices).
MODES: dict[ImageFormat, dict[str, Any]] = {
    ImageFormat.JPEG: {"L": 90, "RGB": (120, 60, 30), "CMYK": (10, 20, 30, 40)},
    ImageFormat.PNG: {
        "1": 1,
        "L": 90,
        "LA": (90, 128),
        "P": 3,
        "P+transparency": 3,
        "RGB": (120, 60, 30),
        "RGBA": (120, 60, 30, 128),
        "I;16": 3000,
    },
    ImageFormat.GIF: {"P": 3, "P+transparency": 3, "L": 90},
    ImageFormat.BMP: {"1": 1, "L": 90, "P": 3, "RGB": (120, 60, 30), "RGBA": (120, 60, 30, 128)},
    ImageFormat.WEBP: {"RGB": (120, 60, 30), "RGBA": (120, 60, 30, 128)},
    ImageFormat.TIFF: {
        "1": 1,
        "L": 90,
        "LA": (90, 128),
        "P": 3,
        "RGB": (120, 60, 30),
        "RGBA": (120, 60, 30, 128),
        "CMYK": (10, 20, 30, 40),
        "I;16": 3000,
        "I": 70000,
        "F": 1.5,
    },
}
SAVE_OPTIONS: dict[ImageFormat, dict[str, Any]] = {
    ImageFormat.TIFF: {"compression": "tiff_deflate"},
    ImageFormat.WEBP: {"lossless": True, "method": 0},
    ImageFormat.PNG: {"compress_level": 1},
}
PROVIDER_KINDS = ("jpeg", "png-256")
JPEG_PROVIDER_KINDS = ("png", "png-256")
"""A JPEG fits a JPEG provider untouched; one taking PNG only makes the intake decode it."""

CHILD = r"""
import json, resource, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/layers/autotag/python"]
import functions.tag_api.handler  # the worker's code, clients and settings: its baseline
from autotag.config import ImageLimits
from autotag.errors import AutotagError
from autotag.image import ImageConstraints, ImageFormat
from autotag.intake.fit import fit
from autotag.intake.checks import inspect_image

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

baseline = rss()
data = open(sys.argv[2], "rb").read()
constraints = {
    "jpeg": ImageConstraints(max_bytes=5 * 1024 * 1024, formats=frozenset({ImageFormat.JPEG})),
    "png-256": ImageConstraints(max_side=256, formats=frozenset({ImageFormat.PNG})),
    "png": ImageConstraints(max_bytes=10 * 1024 * 1024, formats=frozenset({ImageFormat.PNG})),
}[sys.argv[3]]
loaded = rss()
outcome = "accepted"
try:
    fit(inspect_image(data, limits=ImageLimits()), constraints)
except AutotagError as error:
    outcome = error.code
print(json.dumps({"baseline": baseline, "loaded": loaded, "peak": rss(), "outcome": outcome}))
"""


GENERATOR = r"""
import json, sys
from PIL import Image
mode, side, colour, name, path, options = json.loads(sys.argv[1])
colour = tuple(colour) if isinstance(colour, list) else colour
if mode.endswith("+transparency"):  # a palette image with a transparent colour
    mode, options = mode.split("+")[0], {**options, "transparency": colour}
Image.new(mode, (side, side), colour).save(path, name, **options)
"""


def _save(mode: str, side: int, colour: Any, image_format: ImageFormat, path: Path) -> Path:
    """Write the image in a child process: this process forks the measured workers, and Linux
    carries a parent's peak RSS into a child's ru_maxrss, so it must stay small itself."""
    spec = [mode, side, colour, image_format.pil_name, str(path), SAVE_OPTIONS.get(image_format, {})]
    subprocess.run([sys.executable, "-c", GENERATOR, json.dumps(spec)], check=True, timeout=600)
    return path


def read_mode(image_format: ImageFormat, mode: str, colour: Any, folder: Path) -> str:
    """The mode Pillow reads back a file of this format written from `mode`."""
    path = _save(mode, 16, colour, image_format, folder / f"probe.{image_format.value}")
    with Image.open(path) as opened:
        return opened.mode


def worst_accepted(
    image_format: ImageFormat, mode: str, colour: Any, folder: Path, budget: int, limits: ImageLimits
) -> tuple[Path, int, int] | None:
    """The largest square image of this format and mode the intake accepts (None: it reads back
    in a mode the guard prices under another entry)."""
    loaded_mode = read_mode(image_format, mode, colour, folder)
    if image_format is ImageFormat.JPEG:
        side = JPEG_FULL_SCALE_SIDE
    else:
        per_pixel = PEAK_BYTES_PER_PIXEL.get((image_format, loaded_mode))
        if per_pixel is None:
            return None
        if mode.endswith("+transparency"):
            per_pixel = max(per_pixel, PALETTE_WITH_TRANSPARENCY_BYTES_PER_PIXEL)
        side = math.isqrt(min(limits.max_pixels, int((budget - FIXED_OVERHEAD_BYTES) / per_pixel)))
    path = folder / f"{image_format.value}-{mode.replace(';', '').replace('+', '-')}.{image_format.value}"
    while side > 16:
        _save(mode, side, colour, image_format, path)
        if path.stat().st_size <= limits.max_bytes:
            try:
                load_image(path, limits=limits)
                return path, side, estimate(load_image(path, limits=limits)).bytes
            except DecodeMemoryError:
                pass
        side = int(side * 0.98)  # a strip, the byte limit or rounding: a little smaller
    return None


def measure(path: Path, provider_kind: str) -> dict[str, Any]:
    env = {**os.environ, **LOOPBACK_AWS_ENV, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(FUNCTION_MEMORY_MB)}
    env["POWERTOOLS_TRACE_DISABLED"] = "true"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), str(path), provider_kind],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child failed on {path.name}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def hostile_files(folder: Path) -> dict[str, Path]:
    files = {
        "report: 16-bit grey PNG 9999x9999": png_header_only(9999, 9999, bit_depth=16, colour_type=PNG_GREY),
        "report: float TIFF 9999x9999, one strip": tiff_header_only(9999, 9999, sample_format=TIFF_FLOAT),
        "report: RGBA PNG 10000x9999": png_header_only(10000, 9999, colour_type=PNG_RGBA),
    }
    paths = {}
    for index, (name, data) in enumerate(files.items()):
        paths[name] = folder / f"hostile-{index}.bin"
        paths[name].write_bytes(data)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", help="comma-separated formats, e.g. PNG,TIFF")
    args = parser.parse_args(argv)
    formats = [ImageFormat(f.strip().lower()) for f in args.only.split(",")] if args.only else list(MODES)
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    limits = ImageLimits()
    budget = decode_budget_bytes(environ={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(FUNCTION_MEMORY_MB)})
    os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(FUNCTION_MEMORY_MB)
    print(
        f"function memory {FUNCTION_MEMORY_MB} MB -> decode budget {budget // MIB} MiB; "
        f"worker limit {WORKER_LIMIT_MIB} MiB; pixel limit {limits.max_pixels:,}, "
        f"byte limit {limits.max_bytes:,}"
    )
    print(
        f"{'case':44} {'provider':8} {'pixels':>12} {'file':>10} {'estimate':>9} {'growth':>8} "
        f"{'peak RSS':>9}"
    )
    cases: list[dict[str, Any]] = []
    failures: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="autotag-bench-memory-") as tmp:
        folder = Path(tmp)
        # First, while this process is smallest (a forked child starts from its peak RSS).
        for name, path in hostile_files(folder).items():
            figures = measure(path, "jpeg")
            case = {
                "case": name,
                "provider": "jpeg",
                "file_bytes": path.stat().st_size,
                "peak_rss_mib": round(figures["peak"] / MIB, 1),
                "outcome": figures["outcome"],
            }
            cases.append(case)
            print(
                f"{name:44} {'jpeg':8} {'':>12} {case['file_bytes']:>10,} {'':>9} {'':>8} "
                f"{case['peak_rss_mib']:>8}M {figures['outcome']}"
            )
            if figures["outcome"] != "image_too_large_to_decode":
                failures.append(f"{name}: {figures['outcome']}")
        for image_format in formats:
            for mode, colour in MODES[image_format].items():
                found = worst_accepted(image_format, mode, colour, folder, budget, limits)
                if found is None:
                    continue
                path, side, estimated = found
                with Image.open(path) as opened:
                    loaded_mode = opened.mode
                name = f"{image_format.value.upper()} {loaded_mode} (written as {mode}) {side}x{side}"
                kinds = JPEG_PROVIDER_KINDS if image_format is ImageFormat.JPEG else PROVIDER_KINDS
                for kind in kinds:
                    figures = measure(path, kind)
                    growth = figures["peak"] - figures["loaded"]
                    case = {
                        "case": name,
                        "format": image_format.value,
                        "mode": loaded_mode,
                        "side": side,
                        "pixels": side * side,
                        "file_bytes": path.stat().st_size,
                        "provider": kind,
                        "estimate_mib": round(estimated / MIB, 1),
                        "growth_mib": round(growth / MIB, 1),
                        "peak_rss_mib": round(figures["peak"] / MIB, 1),
                        "baseline_rss_mib": round(figures["baseline"] / MIB, 1),
                        "outcome": figures["outcome"],
                    }
                    cases.append(case)
                    print(
                        f"{name:44} {kind:8} {side * side:>12,} {path.stat().st_size:>10,} "
                        f"{case['estimate_mib']:>8}M {case['growth_mib']:>7}M {case['peak_rss_mib']:>8}M "
                        f"{'' if figures['outcome'] == 'accepted' else figures['outcome']}",
                        flush=True,
                    )
                    if figures["outcome"] != "accepted":
                        failures.append(f"{name} ({kind}): {figures['outcome']}")
                    if case["peak_rss_mib"] > WORKER_LIMIT_MIB:
                        failures.append(f"{name} ({kind}): peak {case['peak_rss_mib']} MiB")
                    if growth > estimated:
                        failures.append(f"{name} ({kind}): grew {case['growth_mib']} MiB > estimate")
                path.unlink()
    accepted = [c for c in cases if c["outcome"] == "accepted"]
    worst = max(accepted, key=lambda c: c["peak_rss_mib"]) if accepted else None
    print("\nworst accepted case per format (peak RSS of the worker):")
    for image_format in formats:
        mine = [c for c in accepted if c["format"] == image_format.value]
        if mine:
            top = max(mine, key=lambda c: c["peak_rss_mib"])
            print(
                f"  {image_format.value.upper():5} {top['peak_rss_mib']:>6} MiB  "
                f"{top['case']} ({top['provider']})"
            )
    if worst:
        print(
            f"worst of all: {worst['peak_rss_mib']} MiB ({worst['case']}, {worst['provider']}); "
            f"limit {WORKER_LIMIT_MIB} MiB"
        )
    print(
        "FAILED:\n  " + "\n  ".join(failures)
        if failures
        else "every accepted case within its estimate and the limit"
    )
    write_result(
        "memory",
        {
            "function_memory_mb": FUNCTION_MEMORY_MB,
            "decode_budget_mib": budget // MIB,
            "worker_limit_mib": WORKER_LIMIT_MIB,
            "cases": cases,
            "worst": worst,
            "failures": failures,
            "ok": not failures,
            "seconds": round(time.monotonic() - started, 1),
        },
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
