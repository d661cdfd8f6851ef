"""cdk-nag (AwsSolutions) and cfn-lint over the synthesized templates; invalid config fails synth."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from autotag.deploy.config import DeploymentConfig
from aws_cdk import aws_iam as iam

from tests.infra.conftest import REPO_ROOT, synthesize

pytestmark = pytest.mark.infra


def test_cdk_nag_reports_no_unacknowledged_findings(every):
    assert every.nag_report is not None, "cdk-nag did not run"
    assert every.nag_violations() == []


def test_cdk_nag_catches_an_unscoped_grant(tmp_path, layer_dir, model_layer_dir):
    """The checks are live: an unacknowledged wildcard grant fails them."""

    def add_wildcard(stack):
        stack.functions.on_upload.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:DeleteItem"], resources=["*"])
        )
        stack.functions.on_upload.add_to_role_policy(iam.PolicyStatement(actions=["s3:*"], resources=["*"]))

    with pytest.raises(RuntimeError, match=r"ValidationFailed") as failure:
        synthesize(DeploymentConfig(), tmp_path, layer_dir, extra=add_wildcard, model_dir=model_layer_dir)
    assert "AwsSolutions-IAM5[Action::s3:*]" in str(failure.value)
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for r in report["pluginReports"] for v in r["violations"]}
    assert "AwsSolutions-IAM5[Action::s3:*]" in rules


def test_acknowledgements_all_carry_reasons(example):
    acknowledged = []
    for construct in example.stack.node.find_all():
        for entry in construct.node.metadata:
            if "acknowledg" in str(entry.type).lower():
                acknowledged.append(entry.data)
    assert acknowledged, "no acknowledgements found in construct metadata"
    for data in acknowledged:
        assert isinstance(data, dict), data
        assert data
        for rule, reason in data.items():
            assert rule.startswith("AwsSolutions::AwsSolutions-"), rule
            # A specific reason, not a placeholder.
            assert isinstance(reason, str), rule
            assert len(reason) >= 60, (rule, reason)


def test_cfn_lint_passes_on_the_synthesized_templates(every):
    from cfnlint.api import ManualArgs, lint_file

    # W3005 (a DependsOn already implied by a GetAtt) is how aws-cdk-lib orders role policies
    # before the resources that use them: redundant, harmless, not ours to remove.
    config = ManualArgs(regions=["us-east-1", "eu-west-1"], ignore_checks=["W3005"])
    matches = lint_file(every.template_path, config=config)
    assert [str(m) for m in matches] == []


def test_invalid_config_fails_synth_with_a_clear_message(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[functions.tag_api]\ntimeout_seconds = 60\n[queue]\nbatch_size = 0\n")
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({"config": str(bad)}), "CDK_OUTDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "infra.app"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "invalid deployment config" in result.stderr
    assert "functions.tag_api" in result.stderr
    assert "29 s integration timeout" in result.stderr
    assert "queue.batch_size" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_dependency_layer_fails_synth_with_the_build_command(tmp_path):
    import aws_cdk as cdk

    from infra.app import build
    from infra.layers import LayerNotBuiltError

    with pytest.raises(LayerNotBuiltError, match="make layer"):
        build(
            cdk.App(outdir=str(tmp_path)),
            DeploymentConfig(),
            dependencies_dir=tmp_path / "missing",
            nag=False,
        )
