"""The cold-start import budget, guarded by which modules a handler imports (not by wall time).

Each handler is loaded by path in a fresh interpreter with the environment the deployed function
has (tracing on, as in AWS), exactly as ``bench/bench_coldstart.py`` measures it; the test then
reads the interpreter's ``sys.modules``. Heavy libraries the cold path does not need must stay
out: they load on first use (httpx with the provider client, Powertools' OpenAPI models with the
OpenAPI document, each provider module when a provider is configured), and X-Ray patches only
botocore at cold start (``autotag.observability.TRACED_AT_COLD_START``). Beyond the floor (boto3,
Powertools' Logger, Metrics and Tracer with X-Ray patching botocore) a handler may load only its own
package, pydantic, Pillow and more of Powertools, within a module budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from bench.bench_coldstart import _FLOOR, HANDLERS, child_environment, function_environment

_LIST_MODULES = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["handler"] = module
spec.loader.exec_module(module)
assert callable(module.handler)
print(json.dumps(sorted(sys.modules)))
"""

NOT_AT_COLD_START = {
    # module prefix -> why it stays out of the cold path
    "httpx": "the provider HTTP client is made (and patched for X-Ray) on first use",
    "requests": "X-Ray patches only botocore at cold start; no function uses requests",
    "sqlite3": "X-Ray's patch_all would import it; nothing uses it",
    "aiobotocore": "X-Ray's patch_all would import it; nothing uses it",
    "aws_xray_sdk.ext.httpx": "patched when autotag.providers.http first loads",
    "aws_xray_sdk.ext.requests": "not patched",
    "aws_lambda_powertools.event_handler.openapi.models": "built when the OpenAPI document is asked for",
    "anyio.from_thread": "the event loop portal (autotag.eventloop) starts with the first provider call",
    "autotag.providers.http": "loaded with the first provider client",
    "autotag.providers.imagedescriber": "provider modules load when configured",
    "autotag.providers.rekognition": "provider modules load when configured",
    "autotag.providers.google_vision": "provider modules load when configured",
    "autotag.providers.huawei": "provider modules load when configured",
    "autotag.providers.basic": "provider modules load when configured",
    "autotag.local": "the local runtime is never part of a deployed function",
    "autotag.cli": "the CLI is never part of a deployed function",
    "autotag.ops": "operations tooling is never part of a deployed function",
    "autotag.deploy": "deploy-time code is never part of a deployed function",
    "moto": "the emulator is never part of a deployed function",
    "httpcore": "the URL fetch loads it with its first fetch (autotag.fetch_pinned)",
    "h11": "the URL fetch loads it with its first fetch",
    "autotag.fetch_pinned": "loaded with the first URL fetch",
    "tomllib": "config files are read by the CLI and the local stack; functions read their environment",
}
NOT_AT_COLD_START_OF = {
    # handler -> module prefix -> why that handler does without it
    "on_batch": {
        "PIL": "a batch task enqueues the object; it never decodes an image",
        "autotag.upload": "a batch task enqueues the object for on_upload; it does not tag it",
        "autotag.tagging": "a batch task enqueues the object for on_upload; it does not tag it",
        "autotag.intake": "a batch task never decodes an image",
    },
    "on_event": {"autotag.api": "the subscriber shares the domain, not the API's models"},
    "on_upload": {"autotag.api": "the upload path shares the domain, not the API's models"},
}
ALLOWED_BEYOND_FLOOR = {
    # What a handler may import beyond the floor (boto3 + the Powertools trio + X-Ray patching
    # botocore): its own package, pydantic and what pydantic loads, Pillow, more of Powertools.
    "autotag",
    "aws_lambda_powertools",
    "boto3",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_inspection",
    "zoneinfo",
    "_zoneinfo",
    "fractions",
    "sysconfig",
    "unicodedata",
    "PIL",
}
MODULE_BUDGET_BEYOND_FLOOR = {"on_upload": 160, "tag_api": 210, "on_event": 145, "on_batch": 85}
"""Modules each handler may import beyond the floor: today's count (142, 190, 128, 71) and about
10% for growth. A larger cold path must be a decision: raise the budget in the same change."""


def fresh_interpreter(script: str, *args: str, function: str = "on_upload") -> Any:
    """Run `script` in a new interpreter with `function`'s deployed environment; its last line's JSON."""
    completed = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        check=False,
        env=child_environment(function_environment(function)),
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def imported_at_cold_start(name: str) -> set[str]:
    return set(fresh_interpreter(_LIST_MODULES, str(HANDLERS[name]), function=name))


@pytest.fixture(scope="module", params=sorted(HANDLERS))
def cold_modules(request: pytest.FixtureRequest) -> tuple[str, set[str]]:
    return request.param, imported_at_cold_start(request.param)


@pytest.fixture(scope="module")
def floor_modules() -> set[str]:
    return set(fresh_interpreter(_FLOOR + "\nimport sys; print(json.dumps(sorted(sys.modules)))"))


def test_tracing_is_on_as_deployed(cold_modules):
    # The control: the environment really is the deployed one, so X-Ray did patch botocore.
    _, modules = cold_modules
    assert "aws_xray_sdk.ext.botocore.patch" in modules


def test_heavy_modules_are_not_imported_at_cold_start(cold_modules):
    name, modules = cold_modules
    found = {
        prefix: sorted(m for m in modules if m == prefix or m.startswith(prefix + "."))
        for prefix in NOT_AT_COLD_START
    }
    offending = {prefix: hits[:3] for prefix, hits in found.items() if hits}
    assert not offending, f"{name} imports at cold start: {offending}"


def test_what_each_handler_does_without_stays_out(cold_modules):
    name, modules = cold_modules
    found = {
        prefix: sorted(m for m in modules if m == prefix or m.startswith(prefix + "."))[:3]
        for prefix in NOT_AT_COLD_START_OF.get(name, {})
    }
    assert {prefix: hits for prefix, hits in found.items() if hits} == {}, name


def test_only_the_expected_packages_load_beyond_the_floor(cold_modules, floor_modules):
    name, modules = cold_modules
    beyond = modules - floor_modules - {"handler", "__main__"}
    packages = {m.split(".")[0] for m in beyond if not m.startswith("_sysconfigdata_")}
    assert sorted(packages - ALLOWED_BEYOND_FLOOR) == [], name
    assert len(beyond) <= MODULE_BUDGET_BEYOND_FLOOR[name], (name, len(beyond))


def test_the_floor_is_what_it_claims(floor_modules):
    # The control for the budget: the floor really is boto3 with Powertools and X-Ray patching.
    assert {
        "boto3",
        "aws_lambda_powertools.tracing.tracer",
        "aws_xray_sdk.ext.botocore.patch",
    } <= floor_modules
    assert not [m for m in floor_modules if m.startswith(("autotag", "pydantic", "PIL"))]


def test_provider_http_calls_are_traced_once_the_client_module_loads():
    script = _LIST_MODULES.replace(
        "print(json.dumps(sorted(sys.modules)))",
        "from autotag.providers.http import make_client\n"
        "print(json.dumps([type(make_client()._transport).__name__]))",
    )
    assert fresh_interpreter(script, str(HANDLERS["on_upload"])) == ["AsyncInstrumentedTransport"]
