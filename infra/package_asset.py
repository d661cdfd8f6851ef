"""What the autotag layer ships: the package minus its tooling (no CDK import, so tests that check
the rule stay fast)."""

from __future__ import annotations

TOOLING_PACKAGES = ("cli", "local", "ops", "deploy")
"""Subpackages of ``autotag`` that only people and the deployment run (the CLI, the local stack,
operations, deploy-time specs): never imported by a function (tests/unit/test_runtime_imports.py),
so never shipped in its layer (tests/infra/test_asset_contents.py)."""
TOOLING_EXCLUDES = [f"python/autotag/{name}" for name in TOOLING_PACKAGES]
"""The tooling, as asset exclude patterns relative to the layer's directory (layers/autotag)."""
