"""Build the third-party dependency layer for Lambda (arm64, CPython 3.12) without Docker.

    uv run python layers/build_dependencies.py [--force] [--check-only]

1. Export the locked runtime requirements from uv.lock (``uv export --frozen --no-default-groups``:
   not the dev tools, not the vision model's runtime, which ships in its own layer, layers/model).
2. Drop what the Lambda Python runtime already has (boto3, botocore and their dependencies) and
   resolve environment markers for the Lambda target, not for this machine.
3. ``pip install --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64
   --only-binary=:all: --python-version 3.12 --implementation cp --no-compile --no-deps --target``
   into ``layers/dependencies/python`` (the full closure is already in the export, hence
   ``--no-deps``).
4. Compile every module to CPython 3.12 bytecode (``__pycache__/*.cpython-312.pyc``, unchecked-hash
   mode, so the zip's file times do not matter). Lambda's /opt is read-only: without shipped
   bytecode every cold start compiles each imported module again (about 220-280 ms of CPU per
   function, measured by compiling what each handler imports). Needs a CPython 3.12 (found with
   ``uv python find 3.12``, installed by ``uv python install 3.12`` when missing); without one the
   layer is built without bytecode and the build says so.
5. Check every installed wheel's tags (``.dist-info/WHEEL``) and every shared object's ELF machine
   are arm64 / cp312-compatible, that nothing excluded slipped in, and print the layer sizes.

The build is skipped when the hash of its inputs (the filtered requirements and this build's
parameters) matches the stamp of the previous build.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LAYER_DIR = ROOT / "layers" / "dependencies"
SITE_DIR = LAYER_DIR / "python"
STAMP = LAYER_DIR / ".inputs.sha256"
AUTOTAG_LAYER_DIR = ROOT / "layers" / "autotag"

PYTHON_VERSION = "3.12"
PLATFORMS = ("manylinux_2_28_aarch64", "manylinux2014_aarch64")
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
SIZE_BUDGET_BYTES = 150 * 1024 * 1024
"""Our own ceiling for both layers together: well under Lambda's 250 MB, leaving room for code."""

PROVIDED_BY_RUNTIME = frozenset(
    canonicalize_name(n)
    for n in ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
)
"""In the Lambda Python 3.12 runtime already; bundling them would shadow the runtime's copies."""

TARGET_MARKER_ENV: Mapping[str, str] = {
    "implementation_name": "cpython",
    "implementation_version": "3.12.0",
    "os_name": "posix",
    "platform_machine": "aarch64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": "3.12.0",
    "python_version": PYTHON_VERSION,
    "sys_platform": "linux",
}

ELF_MACHINE_AARCH64 = 0xB7
_PLATFORM_TAG = re.compile(r"^(manylinux_\d+_\d+|manylinux2014|musllinux_\d+_\d+)_aarch64$")


class LayerBuildError(Exception):
    """The layer cannot be built or fails its checks."""


# --- Requirements --------------------------------------------------------------------------------


def export_requirements() -> str:
    """The locked runtime closure, as pip requirements (no hashes: --no-deps install of exact pins)."""
    command = [
        "uv",
        "export",
        "--frozen",
        "--no-default-groups",
        "--no-hashes",
        "--no-emit-project",
        "--no-header",
        "--no-annotate",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise LayerBuildError(f"uv export failed: {result.stderr.strip()}")
    return result.stdout


def select_requirements(exported: str) -> list[str]:
    """Pinned requirements for the Lambda target: markers evaluated for linux/aarch64/cp312,
    runtime-provided packages dropped, sorted for a stable hash."""
    selected: list[str] = []
    for raw in exported.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise LayerBuildError(f"cannot parse exported requirement {line!r}: {exc}") from None
        if requirement.marker is not None and not requirement.marker.evaluate(dict(TARGET_MARKER_ENV)):
            continue
        if canonicalize_name(requirement.name) in PROVIDED_BY_RUNTIME:
            continue
        if not str(requirement.specifier).startswith("=="):
            raise LayerBuildError(f"requirement {line!r} is not pinned; export from uv.lock")
        requirement.marker = None
        selected.append(str(requirement))
    return sorted(selected, key=str.lower)


def inputs_hash(requirements: Iterable[str], *, bytecode: bool = True) -> str:
    payload = {
        "bytecode": bytecode,  # a layer built without a 3.12 is rebuilt once one is available
        "requirements": list(requirements),
        "python": PYTHON_VERSION,
        "platforms": PLATFORMS,
        "excluded": sorted(PROVIDED_BY_RUNTIME),
        "builder": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# --- Install -------------------------------------------------------------------------------------


def pip_command() -> list[str]:
    """This interpreter's pip if it has one; otherwise pip run through uv (uv venvs have no pip)."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    return ["uv", "tool", "run", "--from", "pip", "pip"]


def install(requirements: list[str], target: Path) -> None:
    requirements_file = target.parent / "requirements.txt"
    requirements_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    command = [
        *pip_command(),
        "install",
        "--disable-pip-version-check",
        "--no-input",
        *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
        "--only-binary=:all:",
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--no-compile",
        "--no-deps",
        "--target",
        str(target),
        "--requirement",
        str(requirements_file),
    ]
    print("+", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=ROOT, check=False)  # noqa: S603
    if result.returncode != 0:
        raise LayerBuildError(f"pip install failed with exit status {result.returncode}")
    for cache in target.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


# --- Bytecode ------------------------------------------------------------------------------------


def target_python(*, install: bool = True) -> str | None:
    """Path of a CPython ``PYTHON_VERSION`` interpreter (the Lambda runtime's): uv's, one on PATH or
    pyenv's, else (with `install`) one ``uv python install`` fetches; None when there is none."""
    find = ["uv", "python", "find", "--no-project", PYTHON_VERSION]
    fetch = ["uv", "python", "install", PYTHON_VERSION]
    for attempt in range(2 if install else 1):
        try:
            found = subprocess.run(find, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
            candidates = [found.stdout.strip()] if found.returncode == 0 else []
        except OSError:  # no uv on PATH
            candidates = []
        candidates.append(shutil.which(f"python{PYTHON_VERSION}") or "")
        candidates += sorted(
            str(p) for p in Path.home().glob(f".pyenv/versions/{PYTHON_VERSION}*/bin/python3")
        )
        for candidate in filter(None, candidates):
            if _is_target_python(candidate):
                return candidate
        if attempt == 0 and install:
            try:
                subprocess.run(fetch, cwd=ROOT, capture_output=True, check=False)  # noqa: S603
            except OSError:
                return None
    return None


def _is_target_python(path: str) -> bool:
    probe = [path, "-c", "import sys; print(sys.implementation.name, '%d.%d' % sys.version_info[:2])"]
    try:
        result = subprocess.run(probe, capture_output=True, text=True, check=False, timeout=30)  # noqa: S603
    except OSError:
        return False
    return result.returncode == 0 and result.stdout.split() == ["cpython", PYTHON_VERSION]


def compile_bytecode(target: Path, python: str | None) -> int:
    """Compile every module under `target` to ``PYTHON_VERSION`` bytecode (unchecked-hash .pyc) with
    `python` (see :func:`target_python`); returns how many .pyc files were written (0 without one)."""
    if python is None:
        print(
            f"WARNING: no CPython {PYTHON_VERSION} found or installable: the layer ships without bytecode "
            "and each cold start compiles its modules",
            flush=True,
        )
        return 0
    tag = "cpython-" + PYTHON_VERSION.replace(".", "")
    command = [
        python,
        "-m",
        "compileall",
        "-q",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",
        str(target),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    written = sum(1 for _ in target.rglob(f"*.{tag}.pyc"))
    if result.returncode != 0:
        # Some wheels carry files that are not meant to be compiled (templates, tests for other
        # versions); those modules are never imported. Report, do not fail.
        failed = [line for line in result.stdout.splitlines() if line.startswith("***")]
        print(f"compileall: {len(failed)} file(s) not compiled (not importable as modules)", flush=True)
    print(f"compiled {written} modules to {tag} bytecode with {python}", flush=True)
    return written


# --- Checks --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WheelInfo:
    distribution: str
    tags: tuple[str, ...]


def installed_wheels(site: Path) -> list[WheelInfo]:
    wheels = []
    for wheel_file in sorted(site.glob("*.dist-info/WHEEL")):
        tags = tuple(
            line.split(":", 1)[1].strip()
            for line in wheel_file.read_text(encoding="utf-8").splitlines()
            if line.startswith("Tag:")
        )
        name = wheel_file.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        wheels.append(WheelInfo(distribution=canonicalize_name(name), tags=tags))
    return wheels


def tag_fits_target(tag: str) -> bool:
    """Whether a wheel tag (python-abi-platform) runs on Lambda's arm64 CPython 3.12."""
    try:
        python, abi, platform = tag.split("-")
    except ValueError:
        return False
    if platform == "any":
        return abi == "none" and (python.startswith("py3") or python in {"py2.py3", "cp312"})
    if not _PLATFORM_TAG.match(platform):
        return False
    if abi == "cp312":
        return python == "cp312"
    if abi == "abi3":
        match = re.fullmatch(r"cp3(\d+)", python)
        return match is not None and int(match.group(1)) <= 12
    return False


def elf_machine(path: Path) -> int | None:
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def check_layer(site: Path) -> list[str]:
    """Problems found in an installed layer tree (empty when it is fit for arm64 CPython 3.12)."""
    problems: list[str] = []
    wheels = installed_wheels(site)
    if not wheels:
        problems.append(f"no installed distributions in {site}")
    for wheel in wheels:
        if not wheel.tags:
            problems.append(f"{wheel.distribution}: WHEEL file lists no tags")
        elif not any(tag_fits_target(tag) for tag in wheel.tags):
            tags = ", ".join(wheel.tags)
            problems.append(f"{wheel.distribution}: wheel tags {tags} do not fit arm64 cp312")
        if wheel.distribution in PROVIDED_BY_RUNTIME:
            problems.append(f"{wheel.distribution} is provided by the Lambda runtime and must not be bundled")
    for shared in sorted(site.rglob("*.so*")):
        if not shared.is_file():
            continue
        machine = elf_machine(shared)
        if machine is not None and machine != ELF_MACHINE_AARCH64:
            problems.append(f"{shared.relative_to(site)} is built for ELF machine {machine:#x}, not aarch64")
    return problems


def tree_size(path: Path) -> int:
    """Bytes shipped: every file but bytecode other than the runtime's (infra/layers.py drops it)."""
    runtime_tag = f".cpython-{PYTHON_VERSION.replace('.', '')}.pyc"
    return sum(
        f.stat().st_size
        for f in path.rglob("*")
        if f.is_file() and ("__pycache__" not in f.parts or f.name.endswith(runtime_tag))
    )


def report_sizes() -> int:
    dependencies = tree_size(SITE_DIR)
    package = tree_size(AUTOTAG_LAYER_DIR / "python")
    total = dependencies + package
    mib = 1024 * 1024
    print(f"dependency layer: {dependencies / mib:.1f} MiB unzipped ({SITE_DIR.relative_to(ROOT)})")
    print(f"autotag layer:    {package / mib:.1f} MiB unzipped ({AUTOTAG_LAYER_DIR.relative_to(ROOT)})")
    print(f"together:         {total / mib:.1f} MiB of Lambda's {LAMBDA_UNZIPPED_LIMIT_BYTES // mib} MiB")
    return total


# --- Main ----------------------------------------------------------------------------------------


def is_current(site_dir: Path, stamp: Path, digest: str) -> bool:
    """Whether `site_dir` was installed from the inputs `digest` names (its stamp says so)."""
    return site_dir.is_dir() and stamp.is_file() and stamp.read_text().strip() == digest


def install_site(
    requirements: list[str], site_dir: Path, stamp: Path, digest: str, python: str | None = None
) -> list[str]:
    """Install `requirements` into a staging folder beside `site_dir`, compile them with `python`
    (when given) and check them. When the checks pass, the staged tree replaces `site_dir` and
    `stamp` records `digest`; otherwise nothing is replaced. Returns the problems found."""
    staging = site_dir.parent / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "python").mkdir(parents=True)
    install(requirements, staging / "python")
    compile_bytecode(staging / "python", python)
    problems = check_layer(staging / "python")
    if problems:
        return problems
    shutil.rmtree(site_dir, ignore_errors=True)
    (staging / "python").rename(site_dir)
    shutil.rmtree(staging, ignore_errors=True)
    stamp.write_text(digest + "\n", encoding="utf-8")
    return []


def build(*, force: bool = False) -> bool:
    """Build the layer unless its inputs are unchanged. Returns whether it was (re)built."""
    requirements = select_requirements(export_requirements())
    python = target_python()
    digest = inputs_hash(requirements, bytecode=python is not None)
    if not force and is_current(SITE_DIR, STAMP, digest):
        print(f"dependency layer is up to date ({digest[:12]}); skipping the build")
        return False
    print(f"building the dependency layer: {len(requirements)} distributions for arm64 / cp{PYTHON_VERSION}")
    problems = install_site(requirements, SITE_DIR, STAMP, digest, python)
    if problems:
        raise LayerBuildError("the built layer fails its checks:\n  " + "\n  ".join(problems))
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    parser.add_argument("--check-only", action="store_true", help="check the built layer; do not build")
    args = parser.parse_args(argv)
    try:
        if not args.check_only:
            build(force=args.force)
        elif not SITE_DIR.is_dir():
            raise LayerBuildError(f"{SITE_DIR} does not exist: run `make layer`")
        problems = check_layer(SITE_DIR)
        if problems:
            raise LayerBuildError("the layer fails its checks:\n  " + "\n  ".join(problems))
        wheels = installed_wheels(SITE_DIR)
        print(f"checked {len(wheels)} distributions: every wheel tag and shared object fits arm64 cp312")
        total = report_sizes()
        if total > SIZE_BUDGET_BYTES:
            raise LayerBuildError(f"layers total {total} bytes, above the {SIZE_BUDGET_BYTES} byte budget")
    except LayerBuildError as exc:
        print(f"layer build failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
