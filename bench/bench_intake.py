"""Benchmark: image intake + fit against a naive full decode + resize. Not a test.

Run from the repository root:

    uv run python -m bench.bench_intake            # or: uv run python bench/bench_intake.py
    uv run python -m bench.bench_intake --repeats 9
    uv run python -m bench.bench_intake --useful-side 1000   # what-if; writes intake-useful-side-1000.json

For each case it times `load_image` + `fit` ("ours") and `Image.open().convert("RGB").resize()` +
save ("naive") in the same run, prints min/median/max, the naive/ours ratio of medians and the bytes
out vs in, and measures the peak RSS of each variant in a fresh subprocess. For JPEG input it also
splits our CPU time into stages (the checks of `inspect_image`; libjpeg's decode at the DCT scale
our output came from; the rest: resize, encode, glue) and prints the ratio no encoder or resizer
could beat at that scale, beside the decode at 1/8 scale (the entropy decode, which every scale
pays). Results are written to bench/results/intake.json.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import PIL
from autotag.image import ImageConstraints, ImageFormat
from autotag.intake.checks import inspect_image
from autotag.intake.fit import fit
from autotag.intake.source import load_image
from PIL import Image, ImageDraw, ImageFilter

RESULTS = Path(__file__).resolve().parent / "results" / "intake.json"
MB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    """Key of the generated input file."""
    constraints: ImageConstraints
    repeats_scale: float = 1.0


CASES = (
    Case("12MP JPEG -> 4 MB / 4096 px", "jpeg12", ImageConstraints(max_bytes=4 * MB, max_side=4096)),
    Case("12MP JPEG -> 1600 px", "jpeg12", ImageConstraints(max_side=1600)),
    Case("24MP JPEG -> 4 MB / 4096 px", "jpeg24", ImageConstraints(max_bytes=4 * MB, max_side=4096), 0.6),
    Case("24MP JPEG -> 1600 px", "jpeg24", ImageConstraints(max_side=1600), 0.6),
    Case(
        "12MP PNG -> 1600 px JPEG",
        "png12",
        ImageConstraints(max_side=1600, formats=frozenset({ImageFormat.JPEG})),
        0.6,
    ),
)


# --- Inputs ----------------------------------------------------------------------------------------


def photo_like(width: int, height: int, seed: int = 1) -> Image.Image:
    """Gradients, fine texture and shapes with soft edges: encodes to a realistic JPEG size."""
    rng = random.Random(seed)
    sky = Image.linear_gradient("L").resize((width, height))
    glow = Image.radial_gradient("L").resize((width, height))
    grain = Image.effect_noise((width, height), 40)
    texture = Image.effect_noise((width // 4, height // 4), 90).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    picture = Image.merge(
        "RGB",
        (
            Image.blend(Image.blend(sky, texture, 0.45), grain, 0.18),
            Image.blend(Image.blend(glow, texture, 0.35), grain, 0.18),
            Image.blend(Image.blend(sky.transpose(Image.Transpose.FLIP_TOP_BOTTOM), glow, 0.3), grain, 0.2),
        ),
    )
    shapes = Image.new("RGB", (width, height))
    mask = Image.new("L", (width, height), 0)
    draw, mask_draw = ImageDraw.Draw(shapes), ImageDraw.Draw(mask)
    for _ in range(60):
        x, y = rng.randrange(width), rng.randrange(height)
        radius = rng.randrange(width // 60, width // 8)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        box = (x - radius, y - radius, x + radius, y + radius)
        draw.ellipse(box, fill=colour)
        mask_draw.ellipse(box, fill=rng.randrange(120, 230))
    picture.paste(shapes, mask=mask.filter(ImageFilter.BoxBlur(6)))
    return Image.blend(picture, grain.convert("RGB"), 0.06)


def make_inputs(directory: Path) -> dict[str, Path]:
    started = time.perf_counter()
    files: dict[str, Path] = {}
    twelve = photo_like(4000, 3000)
    files["jpeg12"] = _save(twelve, directory / "photo-12mp.jpg", "JPEG", quality=92)
    files["png12"] = _save(twelve, directory / "photo-12mp.png", "PNG", compress_level=1)
    files["jpeg24"] = _save(photo_like(6000, 4000, seed=2), directory / "photo-24mp.jpg", "JPEG", quality=92)
    print(f"generated inputs in {time.perf_counter() - started:.1f}s")
    return files


def _save(picture: Image.Image, path: Path, image_format: str, **options: object) -> Path:
    picture.save(path, image_format, **options)
    return path


# --- The two ways of doing it -------------------------------------------------------------------------


def ours(data: bytes, constraints: ImageConstraints) -> bytes:
    return fit(load_image(data), constraints).data


def naive(data: bytes, constraints: ImageConstraints) -> bytes:
    """What a straightforward implementation does: decode everything, resize, save as JPEG."""
    picture = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = picture.size
    scale = min(1.0, (constraints.max_side or max(width, height)) / max(width, height))
    picture = picture.resize((round(width * scale), round(height * scale)))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


VARIANTS: dict[str, Callable[[bytes, ImageConstraints], bytes]] = {"ours": ours, "naive": naive}


def time_variant(
    variant: Callable[[bytes, ImageConstraints], bytes], data: bytes, case: Case, repeats: int
) -> tuple[list[float], bytes, list[float]]:
    """Wall times, the last output, and CPU times of this thread (steadier on a shared machine:
    other processes' load barely moves them; both variants run single-threaded here)."""
    timings: list[float] = []
    cpu: list[float] = []
    output = b""
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.thread_time()
        output = variant(data, case.constraints)
        timings.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - cpu_started)
    return timings, output, cpu


def cpu_median(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.thread_time()
        action()
        times.append(time.thread_time() - started)
    return statistics.median(times)


def jpeg_decode(data: bytes, at_least: tuple[int, int]) -> Image.Image:
    """libjpeg's decode at the smallest DCT scale (1, 1/2, 1/4, 1/8) that keeps `at_least`."""
    picture = Image.open(io.BytesIO(data))
    picture.draft(None, at_least)
    picture.load()
    return picture


def jpeg_stages(
    data: bytes, output: bytes, ours_cpu: float, naive_cpu: float, repeats: int
) -> dict[str, object]:
    """Where our CPU time goes on a JPEG, and the best ratio to naive each floor allows."""
    with Image.open(io.BytesIO(output)) as produced:
        output_size = produced.size
    with Image.open(io.BytesIO(data)) as source:
        eighth = (max(1, source.width // 8), max(1, source.height // 8))
    checks = cpu_median(lambda: inspect_image(data), repeats)
    decode = cpu_median(lambda: jpeg_decode(data, output_size), repeats)
    decode_eighth = cpu_median(lambda: jpeg_decode(data, eighth), repeats)
    scale = round(jpeg_decode(data, output_size).width / eighth[0] / 8, 3)
    return {
        "decode_scale": scale,
        "cpu_ms": {
            "checks": round(checks * 1000, 1),
            "decode_at_scale": round(decode * 1000, 1),
            "rest": round((ours_cpu - checks - decode) * 1000, 1),
            "decode_at_one_eighth": round(decode_eighth * 1000, 1),
        },
        "ceiling_cpu_ratio": {
            "at_scale_free_resize_and_encode": round(naive_cpu / (checks + decode), 2),
            "at_one_eighth_free_resize_and_encode": round(naive_cpu / (checks + decode_eighth), 2),
        },
    }


# --- Peak memory in a fresh process ------------------------------------------------------------------


def with_useful_side(useful_side: int | None) -> tuple[Case, ...]:
    if useful_side is None:
        return CASES
    return tuple(
        replace(case, constraints=case.constraints.model_copy(update={"useful_side": useful_side}))
        for case in CASES
    )


def child(case_index: int, variant: str, path: str, useful_side: int | None) -> None:
    """Run one variant once and print this process's peak RSS in KiB."""
    data = Path(path).read_bytes()
    if variant != "baseline":
        VARIANTS[variant](data, with_useful_side(useful_side)[case_index].constraints)
    print(peak_rss_kib())


def peak_rss_kib() -> int:
    # Linux keeps ru_maxrss across fork+exec, so a child started by a big parent would report the
    # parent's peak; VmHWM belongs to the new address space only. Elsewhere ru_maxrss is all there is.
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def peak_rss_mib(case_index: int, variant: str, path: Path, useful_side: int | None) -> float:
    what_if = [] if useful_side is None else ["--useful-side", str(useful_side)]
    command = ["-m", "bench.bench_intake", "--child", str(case_index), variant, str(path), *what_if]
    completed = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return int(completed.stdout.strip().splitlines()[-1]) / 1024


# --- Reporting ---------------------------------------------------------------------------------------


def summary(timings: list[float]) -> dict[str, float]:
    return {
        "min_s": round(min(timings), 4),
        "median_s": round(statistics.median(timings), 4),
        "max_s": round(max(timings), 4),
    }


def cpu_summary(cpu: list[float]) -> dict[str, float]:
    return {"cpu_min_s": round(min(cpu), 4), "cpu_median_s": round(statistics.median(cpu), 4)}


def describe(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as picture:
        return f"{picture.format} {picture.width}x{picture.height}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-rss", action="store_true", help="skip the per-case peak-RSS subprocesses")
    parser.add_argument(
        "--useful-side",
        type=int,
        help="what-if: run every case with this ImageConstraints.useful_side (default: the model's)",
    )
    parser.add_argument("--child", nargs=3, metavar=("CASE", "VARIANT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(int(args.child[0]), args.child[1], args.child[2], args.useful_side)
        return 0
    cases = with_useful_side(args.useful_side)

    started = time.perf_counter()
    report: dict[str, object] = {
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "machine": platform.machine(),
        "repeats": args.repeats,
        "useful_side": args.useful_side,
        "cases": [],
    }
    with tempfile.TemporaryDirectory(prefix="autotag-bench-") as tmp:
        files = make_inputs(Path(tmp))
        baseline = None if args.no_rss else peak_rss_mib(0, "baseline", files["jpeg12"], args.useful_side)
        report["baseline_rss_mib"] = baseline and round(baseline, 1)
        for index, case in enumerate(cases):
            data = files[case.source].read_bytes()
            repeats = max(2, round(args.repeats * case.repeats_scale))
            ours_times, ours_out, ours_cpu = time_variant(ours, data, case, repeats)
            naive_times, naive_out, naive_cpu = time_variant(naive, data, case, repeats)
            ratio = statistics.median(naive_times) / statistics.median(ours_times)
            cpu_ratio = statistics.median(naive_cpu) / statistics.median(ours_cpu)
            entry: dict[str, object] = {
                "case": case.name,
                "input": {"description": describe(data), "bytes": len(data)},
                "repeats": repeats,
                "ours": summary(ours_times)
                | cpu_summary(ours_cpu)
                | {"bytes_out": len(ours_out), "output": describe(ours_out)},
                "naive": summary(naive_times)
                | cpu_summary(naive_cpu)
                | {"bytes_out": len(naive_out), "output": describe(naive_out)},
                "ratio_naive_over_ours": round(ratio, 2),
                "cpu_ratio_naive_over_ours": round(cpu_ratio, 2),
                "min_ratios_naive_over_ours": {
                    "wall": round(min(naive_times) / min(ours_times), 2),
                    "cpu": round(min(naive_cpu) / min(ours_cpu), 2),
                },
            }
            if describe(data).startswith("JPEG"):
                entry["stages"] = jpeg_stages(
                    data, ours_out, statistics.median(ours_cpu), statistics.median(naive_cpu), repeats
                )
            if not args.no_rss:
                entry["peak_rss_mib"] = {
                    "ours": round(peak_rss_mib(index, "ours", files[case.source], args.useful_side), 1),
                    "naive": round(peak_rss_mib(index, "naive", files[case.source], args.useful_side), 1),
                }
            report["cases"].append(entry)  # type: ignore[attr-defined]
            print_case(entry)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    if baseline is not None:
        print(f"\npeak RSS of an interpreter that only imports and reads the file: {baseline:.1f} MiB")
    print(f"total {report['total_seconds']}s")
    # A what-if run never replaces the figures `make bench` summarizes.
    path = RESULTS
    if args.useful_side is not None:
        path = RESULTS.with_name(f"intake-useful-side-{args.useful_side}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


def print_case(entry: dict) -> None:
    source = entry["input"]
    size = source["bytes"] / MB
    print(f"\n{entry['case']}  (input {source['description']}, {size:.2f} MB, n={entry['repeats']})")
    for variant in ("ours", "naive"):
        stats = entry[variant]
        rss = entry.get("peak_rss_mib", {}).get(variant)
        rss_text = f"  peak RSS {rss:7.1f} MiB" if rss is not None else ""
        print(
            f"  {variant:<5} min {stats['min_s'] * 1000:7.1f} ms  median {stats['median_s'] * 1000:7.1f} ms  "
            f"max {stats['max_s'] * 1000:7.1f} ms  out {stats['output']}, {stats['bytes_out'] / MB:.2f} MB "
            f"({stats['bytes_out'] / source['bytes']:.0%} of input){rss_text}"
        )
    print(
        f"  naive/ours (median): {entry['ratio_naive_over_ours']:.2f}x wall, "
        f"{entry['cpu_ratio_naive_over_ours']:.2f}x CPU "
        f"(CPU ms ours {entry['ours']['cpu_median_s'] * 1000:.1f}, "
        f"naive {entry['naive']['cpu_median_s'] * 1000:.1f})"
    )
    at_min = entry["min_ratios_naive_over_ours"]
    print(f"  naive/ours (min): {at_min['wall']:.2f}x wall, {at_min['cpu']:.2f}x CPU")
    stages = entry.get("stages")
    if stages:
        cpu, ceiling = stages["cpu_ms"], stages["ceiling_cpu_ratio"]
        print(
            f"  ours' CPU: checks {cpu['checks']:.1f} ms + libjpeg decode at "
            f"{stages['decode_scale']:g} scale {cpu['decode_at_scale']:.1f} ms + "
            f"resize/encode/rest {cpu['rest']:.1f} ms; "
            f"decode at 1/8 scale {cpu['decode_at_one_eighth']:.1f} ms"
        )
        print(
            f"  best naive/ours CPU ratio with free resize and encode: "
            f"{ceiling['at_scale_free_resize_and_encode']:.2f}x at this scale, "
            f"{ceiling['at_one_eighth_free_resize_and_encode']:.2f}x even at 1/8 scale"
        )


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
