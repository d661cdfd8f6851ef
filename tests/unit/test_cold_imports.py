"""The cold-start import budget, guarded by which modules a handler imports (not by wall time).

Each handler is loaded by path in a fresh interpreter with the environment the deployed function
has (tracing on, as in AWS), exactly as ``bench/bench_coldstart.py`` measures it; the test then
reads the interpreter's ``sys.modules``. Heavy libraries the cold path does not need must stay
out: they load on first use (httpx with the provider client, Powertools' OpenAPI models with the
OpenAPI document, each provider module when a provider is configured), and X-Ray patches only
botocore at cold start (``autotag.observability.TRACED_AT_COLD_START``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.bench_coldstart import HANDLERS, child_environment, function_environment

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
    "autotag.providers.http": "loaded with the first provider client",
    "autotag.providers.imagedescriber": "provider modules load when configured",
    "autotag.providers.rekognition": "provider modules load when configured",
    "autotag.providers.google_vision": "provider modules load when configured",
    "autotag.providers.huawei": "provider modules load when configured",
    "autotag.providers.basic": "provider modules load when configured",
    "autotag.local": "the local runtime is never part of a deployed function",
    "autotag.cli": "the CLI is never part of a deployed function",
    "autotag.deploy": "deploy-time code (the deployment models, ~75 ms of class builds): infra and the local stack only",
    "moto": "the emulator is never part of a deployed function",
}


def imported_at_cold_start(name: str) -> set[str]:
    env = child_environment(function_environment(name))
    completed = subprocess.run(
        [sys.executable, "-c", _LIST_MODULES, str(HANDLERS[name])],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return set(json.loads(completed.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module", params=sorted(HANDLERS))
def cold_modules(request: pytest.FixtureRequest) -> tuple[str, set[str]]:
    return request.param, imported_at_cold_start(request.param)


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


def test_provider_http_calls_are_traced_once_the_client_module_loads():
    env = child_environment(function_environment("on_upload"))
    script = _LIST_MODULES.replace(
        "print(json.dumps(sorted(sys.modules)))",
        "from autotag.providers.http import make_client\n"
        "print(json.dumps([type(make_client()._transport).__name__]))",
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, str(HANDLERS["on_upload"])],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == ["AsyncInstrumentedTransport"]
