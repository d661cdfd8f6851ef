"""Generate the vision model's vocabulary (committed: autotag/vision/imagenet_vocabulary.json).

    apt-get install -y wordnet-base
    uv run python layers/build_vocabulary.py [--check]

Inputs, both from registries:
- the 1,000 ImageNet-1k WordNet ids in the model's output order (sorted), from the PyPI wheel
  ``timm`` 1.0.31 (``timm/data/_info/imagenet_synsets.txt``, Apache-2.0), fetched with
  ``pip download --no-deps`` and checked by sha256 (timm is not installed: it needs torch);
- WordNet 3.0 from Debian's ``wordnet-base`` (``/usr/share/wordnet``): ImageNet ids are WordNet
  noun offsets, so each class's lemmas and hypernyms come from there (WordNet licence, free use).

For every class it writes a friendly name (the synset's first lemma), the parent concepts it
belongs to (a curated list of concepts people tag, found by walking all hypernym paths, most
specific first), a category (the broad family: animal, food, plant, vehicle, ...) and a kind
(``scene`` for landscapes, ``label`` otherwise). People: WordNet puts ``groom``, ``scuba diver``
and ``ballplayer`` under person, and garments and headwear are worn by people in ImageNet's
photos, so those classes carry ``person`` as a parent too (see docs/providers/efficientnet.md).

The runtime never reads WordNet: the JSON is all it needs. ``--check`` regenerates in memory and
fails when the committed file differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "layers" / "autotag" / "python" / "autotag" / "vision" / "imagenet_vocabulary.json"
WORDNET_DIR = Path("/usr/share/wordnet")
SYNSETS_WHEEL = "timm==1.0.31"
SYNSETS_WHEEL_FILE = "timm-1.0.31-py3-none-any.whl"
SYNSETS_WHEEL_SHA256 = "5bd50f7d0fe6d09bf9285ac2523234a1b7e6bf075c0be3e7aed09139fcb617c7"
SYNSETS_MEMBER = "timm/data/_info/imagenet_synsets.txt"

# (WordNet lemma, sense number) -> (tag, category). The concepts people tag; order does not matter.
CONCEPTS: dict[tuple[str, int], tuple[str, str]] = {
    ("animal", 1): ("animal", "animal"),
    ("mammal", 1): ("mammal", "animal"),
    ("dog", 1): ("dog", "animal"),
    ("wolf", 1): ("wolf", "animal"),
    ("fox", 1): ("fox", "animal"),
    ("cat", 1): ("cat", "animal"),
    ("big_cat", 1): ("big cat", "animal"),
    ("bear", 1): ("bear", "animal"),
    ("primate", 2): ("primate", "animal"),
    ("monkey", 1): ("monkey", "animal"),
    ("ape", 1): ("ape", "animal"),
    ("rodent", 1): ("rodent", "animal"),
    ("rabbit", 1): ("rabbit", "animal"),
    ("horse", 1): ("horse", "animal"),
    ("bovid", 1): ("bovid", "animal"),
    ("cattle", 1): ("cattle", "animal"),
    ("sheep", 1): ("sheep", "animal"),
    ("pig", 1): ("pig", "animal"),
    ("whale", 2): ("whale", "animal"),
    ("seal", 9): ("seal", "animal"),
    ("bird", 1): ("bird", "animal"),
    ("bird_of_prey", 1): ("bird of prey", "animal"),
    ("parrot", 1): ("parrot", "animal"),
    ("owl", 1): ("owl", "animal"),
    ("duck", 1): ("duck", "animal"),
    ("chicken", 2): ("chicken", "animal"),
    ("fish", 1): ("fish", "animal"),
    ("shark", 1): ("shark", "animal"),
    ("reptile", 1): ("reptile", "animal"),
    ("snake", 1): ("snake", "animal"),
    ("lizard", 1): ("lizard", "animal"),
    ("turtle", 2): ("turtle", "animal"),
    ("crocodilian_reptile", 1): ("crocodile", "animal"),
    ("amphibian", 3): ("amphibian", "animal"),
    ("frog", 1): ("frog", "animal"),
    ("insect", 1): ("insect", "animal"),
    ("butterfly", 1): ("butterfly", "animal"),
    ("beetle", 1): ("beetle", "animal"),
    ("bee", 1): ("bee", "animal"),
    ("spider", 1): ("spider", "animal"),
    ("crustacean", 1): ("crustacean", "animal"),
    ("mollusk", 1): ("mollusk", "animal"),
    ("invertebrate", 1): ("invertebrate", "animal"),
    ("person", 1): ("person", "person"),
    ("food", 1): ("food", "food"),
    ("food", 2): ("food", "food"),
    ("edible_fruit", 1): ("fruit", "food"),
    ("vegetable", 1): ("vegetable", "food"),
    ("dish", 2): ("dish", "food"),
    ("baked_goods", 1): ("baked goods", "food"),
    ("bread", 1): ("bread", "food"),
    ("dessert", 1): ("dessert", "food"),
    ("beverage", 1): ("drink", "food"),
    ("coffee", 1): ("coffee", "food"),
    ("alcohol", 1): ("alcoholic drink", "food"),
    ("plant", 2): ("plant", "plant"),
    ("flower", 1): ("flower", "plant"),
    ("tree", 1): ("tree", "plant"),
    ("fungus", 1): ("fungus", "plant"),
    ("vehicle", 1): ("vehicle", "vehicle"),
    ("wheeled_vehicle", 1): ("vehicle", "vehicle"),
    ("motor_vehicle", 1): ("motor vehicle", "vehicle"),
    ("car", 1): ("car", "vehicle"),
    ("truck", 1): ("truck", "vehicle"),
    ("bus", 1): ("bus", "vehicle"),
    ("bicycle", 1): ("bicycle", "vehicle"),
    ("motorcycle", 1): ("motorcycle", "vehicle"),
    ("minibike", 1): ("motorcycle", "vehicle"),
    ("motor_scooter", 1): ("scooter", "vehicle"),
    ("train", 1): ("train", "vehicle"),
    ("locomotive", 1): ("train", "vehicle"),
    ("car", 2): ("train", "vehicle"),
    ("streetcar", 1): ("tram", "vehicle"),
    ("aircraft", 1): ("aircraft", "vehicle"),
    ("airplane", 1): ("airplane", "vehicle"),
    ("spacecraft", 1): ("spacecraft", "vehicle"),
    ("rocket", 1): ("rocket", "vehicle"),
    ("missile", 1): ("rocket", "vehicle"),
    ("vessel", 2): ("boat", "vehicle"),
    ("boat", 1): ("boat", "vehicle"),
    ("ship", 1): ("ship", "vehicle"),
    ("structure", 1): ("structure", "building"),
    ("building", 1): ("building", "building"),
    ("house", 1): ("house", "building"),
    ("place_of_worship", 1): ("place of worship", "building"),
    ("bridge", 1): ("bridge", "building"),
    ("tower", 1): ("tower", "building"),
    ("shop", 1): ("shop", "building"),
    ("fence", 1): ("fence", "building"),
    ("geological_formation", 1): ("landscape", "nature"),
    ("shore", 1): ("shore", "nature"),
    ("mountain", 1): ("mountain", "nature"),
    ("body_of_water", 1): ("water", "nature"),
    ("furniture", 1): ("furniture", "object"),
    ("seat", 3): ("seat", "object"),
    ("table", 2): ("table", "object"),
    ("bed", 1): ("bed", "object"),
    ("clothing", 1): ("clothing", "clothing"),
    ("footwear", 2): ("footwear", "clothing"),
    ("headdress", 1): ("headwear", "clothing"),
    ("musical_instrument", 1): ("musical instrument", "object"),
    ("container", 1): ("container", "object"),
    ("bottle", 1): ("bottle", "object"),
    ("bag", 1): ("bag", "object"),
    ("cup", 1): ("cup", "object"),
    ("tableware", 1): ("tableware", "object"),
    ("kitchen_utensil", 1): ("kitchenware", "object"),
    ("home_appliance", 1): ("appliance", "object"),
    ("tool", 1): ("tool", "object"),
    ("weapon", 1): ("weapon", "object"),
    ("computer", 1): ("computer", "electronics"),
    ("electronic_equipment", 1): ("electronics", "electronics"),
    ("telephone", 1): ("phone", "electronics"),
    ("camera", 1): ("camera", "electronics"),
    ("timepiece", 1): ("timepiece", "object"),
    ("clock", 1): ("clock", "object"),
    ("sports_equipment", 1): ("sports equipment", "sport"),
    ("ball", 1): ("ball", "sport"),
    ("toy", 1): ("toy", "object"),
    ("lamp", 1): ("lamp", "object"),
    ("screen", 3): ("screen", "electronics"),
}
PERSON_WORN = (("clothing", 1), ("headdress", 1), ("neckwear", 1), ("mask", 4))
"""Classes under these are worn by people in ImageNet's photos: they carry ``person`` too ..."""
PERSON_NOT_WORN = (("footwear", 2), ("hosiery", 1))
"""... except shoes and stockings, photographed on their own as often as worn."""
EXTRA_PARENTS: dict[str, tuple[str, ...]] = {
    # Worn or used on a person in the photos the classes were trained on, outside WordNet's clothing.
    "n04356056": ("person",),  # sunglasses
    "n04355933": ("person",),  # sunglass
    "n03676483": ("person",),  # lipstick
    "n03814639": ("person",),  # neck brace
    "n03868863": ("person",),  # oxygen mask
    "n04251144": ("person",),  # snorkel
    # Plants and their parts that WordNet files under seed, grain or container.
    "n03991062": ("plant",),  # pot (flowerpot)
    "n11879895": ("flower", "plant"),  # rapeseed
    "n12144580": ("plant",),  # corn
    "n13133613": ("plant",),  # ear (of corn)
    "n12267677": ("plant",),  # acorn
    "n12620546": ("plant",),  # hip (rose hip)
    "n12768682": ("plant",),  # buckeye
}
"""Parents WordNet's hypernyms do not give, by ImageNet id."""
SCENE_ROOTS = (("geological_formation", 1),)
EXCLUSIVE = {"container": ("vehicle",), "food": ("drink",)}
"""A tag dropped when one of these is present: WordNet files wheeled vehicles under container and
beverages under food (nutrient), which is not what anyone calls a cup of coffee."""
CATEGORY_ORDER = (
    "person",
    "animal",
    "food",
    "plant",
    "vehicle",
    "clothing",
    "building",
    "nature",
    "electronics",
    "sport",
    "object",
)


@dataclass(frozen=True)
class Synset:
    offset: str
    lemmas: tuple[str, ...]
    hypernyms: tuple[str, ...]


class WordNet:
    """Just enough of WordNet 3.0's noun database: lemmas, (instance) hypernyms, sense lookup."""

    def __init__(self, directory: Path) -> None:
        self.synsets: dict[str, Synset] = {}
        for line in (directory / "data.noun").read_text(encoding="latin-1").splitlines():
            if line.startswith(" "):
                continue
            fields = line.split(" ")
            offset, count = fields[0], int(fields[3], 16)
            lemmas = tuple(fields[4 + 2 * i] for i in range(count))
            at = 4 + 2 * count
            pointers = int(fields[at])
            hypernyms = []
            for i in range(pointers):
                symbol, target, pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
                if symbol in ("@", "@i") and pos == "n":
                    hypernyms.append(target)
            self.synsets[offset] = Synset(offset, lemmas, tuple(hypernyms))
        self.senses: dict[str, list[str]] = {}
        for line in (directory / "index.noun").read_text(encoding="latin-1").splitlines():
            if line.startswith(" "):
                continue
            fields = line.split()
            synset_count = int(fields[2])
            self.senses[fields[0]] = fields[len(fields) - synset_count :]

    def sense(self, lemma: str, number: int) -> str:
        return self.senses[lemma][number - 1]

    def ancestors(self, offset: str) -> list[str]:
        """Every hypernym (instance hypernyms included), nearest first (breadth-first)."""
        seen: list[str] = []
        frontier = [offset]
        while frontier:
            following: list[str] = []
            for current in frontier:
                for parent in self.synsets[current].hypernyms:
                    if parent not in seen:
                        seen.append(parent)
                        following.append(parent)
            frontier = following
        return seen


def friendly(lemma: str) -> str:
    # WordNet keeps proper nouns capitalized ("German shepherd", "Granny Smith"); so do we.
    return lemma.replace("_", " ")


def imagenet_ids(wheel_dir: Path | None) -> list[str]:
    with tempfile.TemporaryDirectory() as temporary:
        directory = wheel_dir or Path(temporary)
        wheel = directory / SYNSETS_WHEEL_FILE
        if not wheel.is_file():
            sys.path.insert(0, str(ROOT / "layers"))
            from build_dependencies import pip_command

            command = [*pip_command(), "download", "--no-deps", "--only-binary=:all:"]
            command += ["--dest", str(directory), SYNSETS_WHEEL]
            subprocess.run(command, check=True)  # noqa: S603
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != SYNSETS_WHEEL_SHA256:
            raise SystemExit(f"{wheel.name}: sha256 {digest}, expected {SYNSETS_WHEEL_SHA256}")
        with zipfile.ZipFile(wheel) as archive:
            ids = archive.read(SYNSETS_MEMBER).decode().split()
    if len(ids) != 1000 or ids != sorted(ids):
        raise SystemExit("the ImageNet-1k id list is not 1,000 sorted ids")
    return ids


def _class_entry(
    wordnet: WordNet,
    wnid: str,
    concepts: dict[str, tuple[str, str]],
    worn: set[str],
    not_worn: set[str],
    scenes: set[str],
) -> dict[str, Any]:
    offset = wnid[1:]
    name = friendly(wordnet.synsets[offset].lemmas[0])
    lineage = [offset, *wordnet.ancestors(offset)]
    parents: list[str] = []
    categories: list[str] = []
    for node in lineage:
        if node in concepts:
            tag, category = concepts[node]
            if tag != name and tag not in parents:
                parents.append(tag)
            if category not in categories:
                categories.append(category)
    if worn & set(lineage) and not not_worn & set(lineage) and "person" not in parents:
        parents.append("person")
    for extra in EXTRA_PARENTS.get(wnid, ()):
        if extra not in parents:
            parents.append(extra)
        if extra != "person":  # sunglasses stay objects; a flowerpot's family is plant
            categories.append(next(c for t, c in concepts.values() if t == extra))
    parents = [p for p in parents if not set(EXCLUSIVE.get(p, ())) & set(parents)]
    category = min(categories, key=CATEGORY_ORDER.index) if categories else "object"
    if category == "person" and worn & set(lineage):
        category = "clothing"
    kind = "scene" if scenes & set(lineage) else "label"
    return {"id": wnid, "name": name, "parents": parents, "category": category, "kind": kind}


def generate(wordnet: WordNet, ids: list[str]) -> dict[str, Any]:
    concepts = {wordnet.sense(lemma, n): value for (lemma, n), value in CONCEPTS.items()}
    worn = {wordnet.sense(lemma, n) for lemma, n in PERSON_WORN}
    not_worn = {wordnet.sense(lemma, n) for lemma, n in PERSON_NOT_WORN}
    scenes = {wordnet.sense(lemma, n) for lemma, n in SCENE_ROOTS}
    classes = [_class_entry(wordnet, wnid, concepts, worn, not_worn, scenes) for wnid in ids]
    # Parents most specific first: the fewer classes a concept covers, the more specific it is.
    coverage: dict[str, int] = {}
    for entry in classes:
        for parent in entry["parents"]:
            coverage[parent] = coverage.get(parent, 0) + 1
    for entry in classes:
        entry["parents"] = sorted(entry["parents"], key=lambda p: (coverage[p], p))
    names = [c["name"] for c in classes]
    for entry in classes:
        if names.count(entry["name"]) > 1:  # two senses of "crane": say which, by the nearest parent
            hypernym = wordnet.synsets[str(entry["id"])[1:]].hypernyms[0]
            entry["name"] = f"{entry['name']} ({friendly(wordnet.synsets[hypernym].lemmas[0])})"
    concept_categories = {tag: category for tag, category in concepts.values()}
    return {
        "model": "efficientnet-lite0 (ImageNet-1k)",
        "sources": {
            "class_ids": f"{SYNSETS_WHEEL} {SYNSETS_MEMBER} (Apache-2.0)",
            "names_and_hypernyms": "WordNet 3.0, Debian wordnet-base (WordNet licence)",
        },
        "concepts": dict(sorted(concept_categories.items())),
        "classes": classes,
    }


def render(vocabulary: dict[str, Any]) -> str:
    return json.dumps(vocabulary, indent=0, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wordnet", type=Path, default=WORDNET_DIR)
    parser.add_argument("--wheel-dir", type=Path, help=f"a folder already holding {SYNSETS_WHEEL_FILE}")
    parser.add_argument("--check", action="store_true", help="fail when the committed file is stale")
    args = parser.parse_args(argv)
    if not (args.wordnet / "data.noun").is_file():
        print(f"WordNet not found in {args.wordnet}: apt-get install -y wordnet-base", file=sys.stderr)
        return 1
    text = render(generate(WordNet(args.wordnet), imagenet_ids(args.wheel_dir)))
    if args.check:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run layers/build_vocabulary.py", file=sys.stderr)
            return 1
        print(f"{OUTPUT.relative_to(ROOT)} is up to date")
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(text) / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
