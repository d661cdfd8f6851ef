"""The ONNX classifier: located, loaded once per process (lazily, on the first image), run on CPU.

Where the model file is looked for, first match wins:
1. the provider option ``model_path``;
2. the environment variable ``AUTOTAG_MODEL_PATH``;
3. ``/opt/autotag-model/efficientnet-lite0.onnx`` (the model layer in Lambda);
4. ``layers/model/autotag-model/efficientnet-lite0.onnx`` in this checkout (``make model``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autotag.errors import ModelNotFoundError

MODEL_PATH_ENV = "AUTOTAG_MODEL_PATH"
MODEL_FILE_NAME = "efficientnet-lite0.onnx"
LAMBDA_LAYER_MODEL = Path("/opt/autotag-model") / MODEL_FILE_NAME


def checkout_model(module_file: Path) -> Path:
    """The built model in a checkout (this file is layers/autotag/python/autotag/vision/model.py);
    in Lambda (/opt/python/autotag/vision/model.py) there is no checkout: the layer's path."""
    parents = module_file.resolve().parents
    if len(parents) <= 5:
        return LAMBDA_LAYER_MODEL
    return parents[5] / "layers" / "model" / "autotag-model" / MODEL_FILE_NAME


CHECKOUT_MODEL = checkout_model(Path(__file__))
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


def model_candidates(configured: str | None) -> list[Path]:
    if configured:
        return [Path(configured)]
    env = os.environ.get(MODEL_PATH_ENV)
    if env:
        return [Path(env)]
    return [LAMBDA_LAYER_MODEL, CHECKOUT_MODEL]


def find_model(configured: str | None = None) -> Path:
    candidates = model_candidates(configured)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise ModelNotFoundError(
        f"the vision model is not built (looked in {looked}): run `make model` "
        "(uv run python layers/build_model.py), or attach the model layer"
    )


@dataclass
class Classifier:
    """Logits for a batch of preprocessed images."""

    run: Callable[[np.ndarray], np.ndarray]
    path: Path
    load_seconds: float

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        logits = self.run(batch).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


def onnx_classifier(path: Path, *, threads: int) -> Classifier:
    import onnxruntime as ort

    started = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = False  # peak RSS follows the batch in hand, not the largest seen
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> np.ndarray:
        outputs: list[Any] = session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        return np.asarray(outputs[0])

    return Classifier(run=run, path=path, load_seconds=time.perf_counter() - started)


_LOCK = threading.Lock()
_LOADED: dict[tuple[Path, int], Classifier] = {}


def shared_classifier(configured: str | None, *, threads: int) -> Classifier:
    """The process-wide classifier for this model file and thread count (loaded on first use)."""
    path = find_model(configured)
    key = (path.resolve(), threads)
    with _LOCK:
        classifier = _LOADED.get(key)
        if classifier is None:
            classifier = _LOADED[key] = onnx_classifier(path, threads=threads)
        return classifier
