"""The vision model layer: attached only when the configuration runs the model, its arm64 runtime,
and every function's code plus layers within Lambda's 250 MB unzipped limit (measured on the built
layers; `make layer` builds them, CI does before the tests)."""

from __future__ import annotations

import pytest
from autotag.deploy.config import FunctionName

from tests.infra.cfn import refs
from tests.infra.conftest import BUILT_LAYER, BUILT_MODEL_LAYER, REPO_ROOT
from tests.infra.test_layer_build import build as deps

pytestmark = pytest.mark.infra

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
MODEL_LAYER_BUILT = (BUILT_MODEL_LAYER / "python").is_dir()


def _layer_ids(synth, name: FunctionName) -> set[str]:
    function = synth.raw["Resources"][synth.logical_id(synth.stack.functions.by_name[name])]
    return {next(iter(refs(layer))) for layer in function["Properties"]["Layers"]}


@pytest.mark.parametrize("name", list(FunctionName))
@pytest.mark.parametrize("synth_name", ["vision", "default"])
def test_functions_carry_the_model_layer_when_the_config_runs_the_model(request, synth_name, name):
    vision = request.getfixturevalue(synth_name)
    layers = vision.stack.layers
    assert layers.model is not None
    assert _layer_ids(vision, name) == {
        vision.logical_id(layers.package),
        vision.logical_id(layers.dependencies),
        vision.logical_id(layers.model),
    }
    layer = vision.raw["Resources"][vision.logical_id(layers.model)]["Properties"]
    assert layer["CompatibleArchitectures"] == ["arm64"]
    assert layer["CompatibleRuntimes"] == ["python3.12"]


@pytest.mark.parametrize("name", list(FunctionName))
def test_no_model_layer_when_the_config_does_not_run_the_model(example, imported, name):
    for synth in (example, imported):
        assert synth.stack.layers.model is None
        assert len(_layer_ids(synth, name)) == 2
        assert not synth.resources_of("AWS::Lambda::LayerVersion").keys() - {
            synth.logical_id(synth.stack.layers.package),
            synth.logical_id(synth.stack.layers.dependencies),
        }


def test_synth_without_the_built_model_layer_says_how_to_build_it(tmp_path, layer_dir):
    import aws_cdk as cdk
    from autotag.deploy.config import DeploymentConfig

    from infra.app import build
    from infra.layers import LayerNotBuiltError

    app = cdk.App(outdir=str(tmp_path))
    with pytest.raises(LayerNotBuiltError, match="make layer"):
        build(app, DeploymentConfig(), dependencies_dir=layer_dir, model_dir=tmp_path)


@pytest.mark.skipif(not MODEL_LAYER_BUILT, reason="model layer not built (make layer)")
def test_the_built_model_layer_is_arm64_cp312_and_holds_the_model():
    assert deps.check_layer(BUILT_MODEL_LAYER / "python") == []
    names = {w.distribution for w in deps.installed_wheels(BUILT_MODEL_LAYER / "python")}
    assert {"onnxruntime", "numpy"} <= names
    assert not names & deps.PROVIDED_BY_RUNTIME
    onnxruntime = next(
        w for w in deps.installed_wheels(BUILT_MODEL_LAYER / "python") if w.distribution == "onnxruntime"
    )
    assert any(t.startswith("cp312-cp312-manylinux") and t.endswith("aarch64") for t in onnxruntime.tags)
    assert (BUILT_MODEL_LAYER / "autotag-model" / "efficientnet-lite0.onnx").stat().st_size > 10_000_000


@pytest.mark.skipif(
    not (MODEL_LAYER_BUILT and (BUILT_LAYER / "python").is_dir()), reason="layers not built (make layer)"
)
@pytest.mark.parametrize("name", list(FunctionName))
def test_each_function_code_plus_layers_fits_lambda_unzipped(vision, name):
    spec = vision.resources.function(name)
    sizes = {
        "code": deps.tree_size(REPO_ROOT / spec.code_dir),
        "autotag": deps.tree_size(REPO_ROOT / "layers" / "autotag" / "python"),
        "dependencies": deps.tree_size(BUILT_LAYER / "python"),
        "model": deps.tree_size(BUILT_MODEL_LAYER / "python")
        + deps.tree_size(BUILT_MODEL_LAYER / "autotag-model"),
    }
    total = sum(sizes.values())
    parts = ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in sizes.items())
    print(f"{name}: {parts}; total {total / 2**20:.1f} MiB")
    assert total <= LAMBDA_UNZIPPED_LIMIT


def test_the_vision_stack_passes_cdk_nag(vision):
    assert vision.nag_report is not None
    assert vision.nag_violations() == []
