"""Cold-start proxy: how long importing each handler module takes in a fresh interpreter, against
``import boto3`` alone (the floor every Python Lambda that talks to AWS pays), in the same run.

Each sample is a new interpreter with the environment a deployed function has (its table, bus,
queue and config variables, Powertools settings, tracing on as in AWS); the handler file is loaded
by path with its folder and the layer on ``sys.path``, as the Lambda runtime does. Samples are
interleaved (boto3, on_upload, tag_api, on_event, on_batch, boto3, ...) so load on the machine hits
all alike. One extra ``python -X importtime`` run per handler attributes the time to packages.

Two references beside ``import boto3``: the *floor* (boto3 and Powertools' Logger, Metrics and Tracer
with X-Ray patching botocore: what any handler in this style loads before its own code) and *floor +
pydantic* (the floor and one pydantic model built: what a handler that validates its configuration
with pydantic cannot avoid). ``--baseline DIR`` measures another checkout's handlers (its
``functions/`` and ``layers/autotag/python``, e.g. ``git worktree add /tmp/before HEAD~3``) in the
same interleaved run, so before and after are compared under the same load.

    uv run python -m bench.bench_coldstart [--repeats 15] [--baseline DIR]

Prints a table and writes bench/results/coldstart.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.common import LAYER, ROOT, machine, ratio, stats, text_table, write_result
from tests.support.loopback_env import LOOPBACK_AWS_ENV

TARGET_RATIO = 1.5
CPU_SAMPLES: dict[str, list[float]] = {}
"""CPU seconds (user + system) of each timed import, beside its wall time: steadier than wall time
when other work shares the machine, since waiting for a core does not count."""
HANDLERS = {
    "on_upload": ROOT / "functions" / "on_upload" / "handler.py",
    "tag_api": ROOT / "functions" / "tag_api" / "handler.py",
    "on_event": ROOT / "functions" / "on_event" / "handler.py",
    "on_batch": ROOT / "functions" / "on_batch" / "handler.py",
}

_LOAD_HANDLER = """
import importlib.util, json, sys, time
path = sys.argv[1]
started, cpu = time.perf_counter(), time.process_time()
spec = importlib.util.spec_from_file_location("handler", path)
module = importlib.util.module_from_spec(spec)
sys.modules["handler"] = module
spec.loader.exec_module(module)
assert callable(module.handler)
print(json.dumps({"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}))
"""
_FLOOR = """
import json, time
started, cpu = time.perf_counter(), time.process_time()
import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
logger, metrics, tracer = Logger(), Metrics(), Tracer(patch_modules=("botocore",))
print(json.dumps({"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}))
"""
"""The least a handler in this style loads: boto3, Powertools' Logger, Metrics and Tracer with X-Ray
patching botocore, and nothing of its own (run with on_upload's environment, so tracing is on)."""
_FLOOR_PYDANTIC = _FLOOR.replace(
    "print(",
    "from pydantic import BaseModel\nclass Settings(BaseModel):\n    name: str = 'autotag'\n"
    "Settings()\nprint(",
    1,
)
"""The floor and one pydantic model built and used: pydantic's import and first-build cost."""
_IMPORT_BOTO3 = """
import json, time
started, cpu = time.perf_counter(), time.process_time()
import boto3
print(json.dumps({"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}))
"""


def function_environment(name: str) -> dict[str, str]:
    """The variables the CDK stack gives this function (default config), plus Lambda's own."""
    from autotag.deploy.config import ON_BATCH_FUNCTION, DeploymentConfig, FunctionName
    from autotag.deploy.environment import batch_environment
    from autotag.deploy.environment import function_environment as environment_of
    from autotag.deploy.specs import describe

    config = DeploymentConfig()
    deployment = describe(config, bucket_name="autotag-images-123456789012")
    if name == ON_BATCH_FUNCTION:
        spec = deployment.batch_operations.function
        env = batch_environment(
            config,
            table_name="Autotag-ImagesTable",
            tag_queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/Autotag-tag-queue",
            images_bucket="autotag-images-123456789012",
        )
    else:
        spec = deployment.function(FunctionName(name))
        env = environment_of(
            spec,
            config=config,
            table_name="Autotag-ImagesTable",
            idempotency_table_name="Autotag-IdempotencyTable",
            event_bus_name="Autotag-Bus",
            images_bucket="autotag-images-123456789012",
            dlq_url=f"https://sqs.us-east-1.amazonaws.com/123456789012/Autotag-{name}-dlq"
            if spec.dead_letter
            else None,
        )
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": f"Autotag-{name}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "LAMBDA_TASK_ROOT": str(HANDLERS[name].parent),
            "_HANDLER": "handler.handler",
        }
    )
    return env


def child_environment(extra: Mapping[str, str], layer: Path = LAYER) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "AUTOTAG_"))}
    env.update(LOOPBACK_AWS_ENV)
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(extra.get("LAMBDA_TASK_ROOT", "")), str(layer)) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    return env


BASELINE_PREFIX = "before:"
BASELINE_HANDLERS: dict[str, Path] = {}
"""``before:<name>`` -> that handler in the ``--baseline`` checkout."""


def run_sample(target: str, envs: Mapping[str, dict[str, str]]) -> float:
    if target == "boto3":
        command = [sys.executable, "-c", _IMPORT_BOTO3]
    elif target == "floor":
        command = [sys.executable, "-c", _FLOOR]
    elif target == "floor_pydantic":
        command = [sys.executable, "-c", _FLOOR_PYDANTIC]
    else:
        handler = BASELINE_HANDLERS[target] if target.startswith(BASELINE_PREFIX) else HANDLERS[target]
        command = [sys.executable, "-c", _LOAD_HANDLER, str(handler)]
    completed = subprocess.run(
        command, capture_output=True, text=True, check=False, env=envs[target], cwd=str(ROOT), timeout=120
    )
    if completed.returncode != 0:
        raise SystemExit(f"{target}: import failed:\n{completed.stderr[-2000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    CPU_SAMPLES.setdefault(target, []).append(float(result["cpu"]))
    return float(result["seconds"])


_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def import_profile(target: str, env: Mapping[str, str], top: int = 8) -> dict[str, Any]:
    """``-X importtime`` of one load: self time summed by top-level package, and the slowest
    modules by cumulative time (each with its own subtree)."""
    command = [sys.executable, "-X", "importtime", "-c", _LOAD_HANDLER, str(HANDLERS[target])]
    completed = subprocess.run(
        command, capture_output=True, text=True, check=True, env=dict(env), cwd=str(ROOT), timeout=120
    )
    by_package: dict[str, int] = defaultdict(int)
    cumulative: list[tuple[int, int, str]] = []
    for line in completed.stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if not match:
            continue
        self_us, cumulative_us, indent, module = int(match[1]), int(match[2]), match[3], match[4]
        by_package[module.split(".")[0]] += self_us
        cumulative.append((cumulative_us, (len(indent) - 1) // 2, module))
    total_us = sum(by_package.values())
    packages = sorted(by_package.items(), key=lambda item: -item[1])[:top]
    # The slowest imports that are not just part of a bigger one already listed.
    notable: list[dict[str, Any]] = []
    for cumulative_us, depth, module in sorted(cumulative, key=lambda item: -item[0]):
        if any(module.startswith(n["module"] + ".") or n["module"] == module for n in notable):
            continue
        if cumulative_us < total_us * 0.03:
            break
        notable.append({"module": module, "cumulative_ms": round(cumulative_us / 1000, 1), "depth": depth})
        if len(notable) >= top + 4:
            break
    return {
        "total_self_ms": round(total_us / 1000, 1),
        "packages_by_self_ms": [{"package": p, "ms": round(us / 1000, 1)} for p, us in packages],
        "slowest_imports": notable,
    }


_LIST_MODULE_FILES = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["handler"] = module
spec.loader.exec_module(module)
print(json.dumps({name: getattr(m, "__file__", None) for name, m in list(sys.modules.items())}))
"""
RUNTIME_PACKAGES = frozenset({"boto3", "botocore", "s3transfer", "urllib3", "jmespath", "dateutil", "six"})
"""Precompiled in the Lambda Python runtime; everything else a handler imports comes from the layers."""


def compile_cost(target: str, env: Mapping[str, str]) -> dict[str, Any]:
    """CPU seconds to compile the source of every module the handler imports from the layers: what
    each cold start pays for modules shipped without bytecode (Lambda's /opt is read-only, so the
    compiled code is never cached). The dependency layer ships CPython 3.12 bytecode
    (layers/build_dependencies.py), the autotag layer too when synth finds a CPython 3.12
    (infra/layers.py, PackageWithBytecode): without it, each cold start pays this again."""
    completed = subprocess.run(
        [sys.executable, "-c", _LIST_MODULE_FILES, str(HANDLERS[target])],
        capture_output=True,
        text=True,
        check=True,
        env=dict(env),
        cwd=str(ROOT),
        timeout=120,
    )
    files: dict[str, str | None] = json.loads(completed.stdout.strip().splitlines()[-1])
    by_layer = {"dependencies": 0.0, "autotag": 0.0}
    modules = {"dependencies": 0, "autotag": 0}
    for name, path in files.items():
        if not path or not path.endswith(".py") or name.split(".")[0] in RUNTIME_PACKAGES:
            continue
        layer = (
            "autotag" if path.startswith(str(LAYER)) else "dependencies" if "site-packages" in path else None
        )
        if layer is None:
            continue
        source = Path(path).read_bytes()
        started = time.thread_time()
        compile(source, path, "exec")
        by_layer[layer] += time.thread_time() - started
        modules[layer] += 1
    return {
        layer: {"modules": modules[layer], "compile_cpu_ms": round(seconds * 1000, 1)}
        for layer, seconds in by_layer.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (its functions/ and layers/autotag/python) measured in the same run",
    )
    args = parser.parse_args(argv)

    envs = {"boto3": child_environment({})}
    envs.update({name: child_environment(function_environment(name)) for name in HANDLERS})
    envs["floor"] = envs["floor_pydantic"] = envs["on_upload"]
    targets = ["boto3", "floor", "floor_pydantic", *HANDLERS]
    if args.baseline is not None:
        for name in HANDLERS:
            handler = args.baseline / "functions" / name / "handler.py"
            if not handler.is_file():
                continue
            env = function_environment(name)
            env["LAMBDA_TASK_ROOT"] = str(handler.parent)
            BASELINE_HANDLERS[BASELINE_PREFIX + name] = handler
            envs[BASELINE_PREFIX + name] = child_environment(
                env, args.baseline / "layers" / "autotag" / "python"
            )
            targets.append(BASELINE_PREFIX + name)
    for target in targets:  # warm the OS page cache and bytecode caches; not counted
        run_sample(target, envs)
    samples: dict[str, list[float]] = {t: [] for t in targets}
    for _ in range(args.repeats):
        for target in targets:
            samples[target].append(run_sample(target, envs))

    floor = stats(samples["boto3"])
    cpu_floor = stats(CPU_SAMPLES["boto3"][-args.repeats :])
    rows = []
    results: dict[str, Any] = {
        "boto3": {"import_s": floor, "cpu_s": cpu_floor, "samples_s": samples["boto3"]}
    }
    for reference, what in (
        ("floor", "boto3 + Powertools Logger, Metrics, Tracer(patch botocore), no autotag code"),
        ("floor_pydantic", "the floor + pydantic with one model built and used, no autotag code"),
    ):
        summary = stats(samples[reference])
        results[reference] = {
            "import_s": summary,
            "cpu_s": stats(CPU_SAMPLES[reference][-args.repeats :]),
            "cpu_ratio_to_boto3_median": ratio(
                float(stats(CPU_SAMPLES[reference][-args.repeats :])["median"]), float(cpu_floor["median"])
            ),
            "ratio_to_boto3_median": ratio(float(summary["median"]), float(floor["median"])),
            "what": what,
            "samples_s": samples[reference],
        }
    for name in BASELINE_HANDLERS:
        summary = stats(samples[name])
        cpu = stats(CPU_SAMPLES[name][-args.repeats :])
        results[name] = {
            "import_s": summary,
            "ratio_to_boto3_median": ratio(float(summary["median"]), float(floor["median"])),
            "cpu_s": cpu,
            "cpu_ratio_to_boto3_median": ratio(float(cpu["median"]), float(cpu_floor["median"])),
            "checkout": str(args.baseline),
            "samples_s": samples[name],
        }
    for name in HANDLERS:
        summary = stats(samples[name])
        cpu = stats(CPU_SAMPLES[name][-args.repeats :])
        result = {
            "import_s": summary,
            "ratio_to_boto3_median": ratio(float(summary["median"]), float(floor["median"])),
            "cpu_s": cpu,
            "cpu_ratio_to_boto3_median": ratio(float(cpu["median"]), float(cpu_floor["median"])),
            "met": float(summary["median"]) <= TARGET_RATIO * float(floor["median"]),
            "samples_s": samples[name],
            "profile": import_profile(name, envs[name]),
            "compile_cost": compile_cost(name, envs[name]),
        }
        results[name] = result
    print(f"cold-start proxy: import time in a fresh interpreter, {args.repeats} interleaved repeats")
    for target in targets:
        summary = results[target]["import_s"]
        rows.append(
            [
                {
                    "boto3": "import boto3",
                    "floor": "floor: boto3 + Powertools trio",
                    "floor_pydantic": "floor + pydantic (one model)",
                }.get(target, f"functions/{target.removeprefix(BASELINE_PREFIX)}/handler.py")
                + (" (baseline)" if target.startswith(BASELINE_PREFIX) else ""),
                f"{summary['min'] * 1000:.0f}",
                f"{summary['median'] * 1000:.0f}",
                f"{summary['max'] * 1000:.0f}",
                "1.00x" if target == "boto3" else f"{results[target]['ratio_to_boto3_median']:.2f}x",
                "1.00x" if target == "boto3" else f"{results[target]['cpu_ratio_to_boto3_median']:.2f}x",
                "" if "met" not in results[target] else ("met" if results[target]["met"] else "MISSED"),
            ]
        )
    print(
        text_table(
            ["module", "min ms", "median ms", "max ms", "vs boto3", "CPU vs boto3", f"<= {TARGET_RATIO}x"],
            rows,
        )
    )
    for name in HANDLERS:
        profile = results[name]["profile"]
        packages = ", ".join(f"{p['package']} {p['ms']:.0f}" for p in profile["packages_by_self_ms"])
        slowest = ", ".join(f"{s['module']} {s['cumulative_ms']:.0f}" for s in profile["slowest_imports"][:8])
        print(f"{name}: self time by package (ms): {packages}")
        print(f"{name}: slowest imports, cumulative (ms): {slowest}")
        cost = results[name]["compile_cost"]
        print(
            f"{name}: compiling what it imports from the layers: dependency layer "
            f"{cost['dependencies']['modules']} modules {cost['dependencies']['compile_cpu_ms']:.0f} ms CPU "
            f"(now shipped as bytecode), autotag layer {cost['autotag']['modules']} modules "
            f"{cost['autotag']['compile_cpu_ms']:.0f} ms CPU (shipped as 3.12 bytecode when synth finds "
            "a CPython 3.12; as source, paid at each cold start, otherwise)"
        )
    path = write_result(
        "coldstart",
        {
            "repeats": args.repeats,
            "target_ratio": TARGET_RATIO,
            "environment": "deployed function variables (tracing on), loaded by path as the runtime does",
            "baseline": str(args.baseline) if args.baseline else None,
            "machine": machine(),
            "results": results,
        },
    )
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
