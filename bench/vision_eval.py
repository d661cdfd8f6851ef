"""The vision evaluation set: real photographs that ship inside packages, each with the tags a
person would accept for it (any of them counts as a hit). Nothing is copied into the repository.

Sources and licences:
- PyPI ``scikit-image`` (``skimage/data``): chelsea, coffee, camera (CC0 by their photographers),
  astronaut, rocket, hubble_deep_field (NASA / SpaceX, public domain), coins (Brooklyn Museum, no
  known copyright restrictions), motorcycle_left/right (Middlebury 2014 stereo set; no licence
  stated: used here for evaluation only, never shown in the demo).
- PyPI ``scikit-learn`` (``sklearn/datasets/images``): china.jpg, flower.jpg (CC BY 2.0, Flickr
  users danielbuechele and vultilion, as their README says).
- Debian ``darknet`` (``/usr/share/darknet/data``): dog, eagle, giraffe, horses, kite, person
  (Debian's copyright file: GPL-3.0+ or MIT or WTFPL). The package is not installed by the project
  (it pulls OpenCV); ``apt-get download darknet`` + ``dpkg-deb -x`` unpacks it into .build/ when
  ``apt-get`` is available, else those photos are skipped and the report says so.

The accepted tags are written for what is in each picture, before looking at the model's answers,
and include true broader terms (``animal`` for a dog); wrong species are not accepted (an eagle is
not a ``kite``), nor are generic terms a person would not use for the picture (``weapon`` for a
launch photo, ``landscape`` for a beach with people).
"""

from __future__ import annotations

import importlib.resources
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT

DARKNET_DATA = Path("/usr/share/darknet/data")
DARKNET_UNPACKED = ROOT / ".build" / "debian" / "darknet"


@dataclass(frozen=True)
class EvalPhoto:
    name: str
    source: str
    """``skimage``, ``sklearn`` or ``darknet``."""
    path: str
    accepted: frozenset[str]
    licence: str


def _photo(name: str, source: str, path: str, accepted: set[str], licence: str) -> EvalPhoto:
    return EvalPhoto(name, source, path, frozenset(a.casefold() for a in accepted), licence)


PHOTOS: tuple[EvalPhoto, ...] = (
    _photo(
        "chelsea",
        "skimage",
        "data/chelsea.png",
        {"cat", "tabby", "tiger cat", "egyptian cat", "kitten", "animal", "mammal", "pet"},
        "CC0",
    ),
    _photo(
        "coffee",
        "skimage",
        "data/coffee.png",
        {"coffee", "espresso", "cup", "coffee mug", "drink", "saucer", "cappuccino", "latte"},
        "CC0",
    ),
    _photo(
        "astronaut",
        "skimage",
        "data/astronaut.png",
        {"person", "woman", "astronaut", "spacesuit", "space suit", "flag", "clothing", "suit", "people"},
        "public domain (NASA)",
    ),
    _photo(
        "rocket",
        "skimage",
        "data/rocket.jpg",
        {"rocket", "missile", "projectile", "spacecraft", "space shuttle", "launch", "vehicle", "smoke"},
        "public domain (SpaceX)",
    ),
    _photo(
        "camera",
        "skimage",
        "data/camera.png",
        {"person", "man", "camera", "tripod", "photographer", "people", "reflex camera"},
        "CC0",
    ),
    _photo(
        "coins",
        "skimage",
        "data/coins.png",
        {"coin", "coins", "money", "currency"},
        "no known copyright restrictions (Brooklyn Museum)",
    ),
    _photo(
        "hubble_deep_field",
        "skimage",
        "data/hubble_deep_field.jpg",
        {"space", "galaxy", "stars", "star", "night sky", "astronomy", "universe"},
        "public domain (NASA)",
    ),
    _photo(
        "motorcycle_left",
        "skimage",
        "data/motorcycle_left.png",
        {"motorcycle", "moped", "motor scooter", "scooter", "motorbike", "vehicle", "motor vehicle"},
        "not stated (Middlebury 2014); evaluation only",
    ),
    _photo(
        "motorcycle_right",
        "skimage",
        "data/motorcycle_right.png",
        {"motorcycle", "moped", "motor scooter", "scooter", "motorbike", "vehicle", "motor vehicle"},
        "not stated (Middlebury 2014); evaluation only",
    ),
    _photo(
        "china",
        "sklearn",
        "datasets/images/china.jpg",
        {
            "building",
            "temple",
            "palace",
            "pagoda",
            "monastery",
            "roof",
            "architecture",
            "structure",
            "place of worship",
            "house",
            "tree",
        },
        "CC BY 2.0 (danielbuechele)",
    ),
    _photo(
        "flower",
        "sklearn",
        "datasets/images/flower.jpg",
        {"flower", "plant", "daisy", "blossom", "petal", "dahlia", "bee", "insect"},
        "CC BY 2.0 (vultilion)",
    ),
    _photo(
        "dog",
        "darknet",
        "dog.jpg",
        {"dog", "animal", "mammal", "bicycle", "bike", "truck", "car", "vehicle", "pickup", "minivan"},
        "MIT / WTFPL / GPL-3.0+ (Debian darknet)",
    ),
    _photo(
        "eagle",
        "darknet",
        "eagle.jpg",
        {"eagle", "bald eagle", "bird", "bird of prey", "raptor", "animal"},
        "MIT / WTFPL / GPL-3.0+ (Debian darknet)",
    ),
    _photo(
        "giraffe",
        "darknet",
        "giraffe.jpg",
        {"giraffe", "zebra", "animal", "mammal", "wildlife"},
        "MIT / WTFPL / GPL-3.0+ (Debian darknet)",
    ),
    _photo(
        "horses",
        "darknet",
        "horses.jpg",
        {"horse", "horses", "animal", "mammal", "foal", "pony"},
        "MIT / WTFPL / GPL-3.0+ (Debian darknet)",
    ),
    _photo(
        "kite",
        "darknet",
        "kite.jpg",
        {"kite", "beach", "seashore", "shore", "person", "people", "sea", "sky", "sand"},
        "MIT / WTFPL / GPL-3.0+ (Debian darknet)",
    ),
    _photo(
        "person",
        "darknet",
        "person.jpg",
        {"person", "woman", "people", "dog", "horse", "animal", "mammal"},
        "MIT / WTFPL / GPL-3.0+ (Debian darknet)",
    ),
)


def darknet_data() -> Path | None:
    """Where darknet's photos are: installed, unpacked before, or unpacked now (None if not possible)."""
    for directory in (DARKNET_DATA, DARKNET_UNPACKED / "usr" / "share" / "darknet" / "data"):
        if (directory / "dog.jpg").is_file():
            return directory
    apt_get, dpkg_deb = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if not apt_get or not dpkg_deb:
        return None
    download = DARKNET_UNPACKED.parent / "download"
    download.mkdir(parents=True, exist_ok=True)
    fetched = subprocess.run([apt_get, "download", "darknet"], cwd=download, capture_output=True, check=False)
    debs = sorted(download.glob("darknet_*.deb"))
    if fetched.returncode != 0 or not debs:
        return None
    subprocess.run([dpkg_deb, "-x", str(debs[-1]), str(DARKNET_UNPACKED)], check=True)
    directory = DARKNET_UNPACKED / "usr" / "share" / "darknet" / "data"
    return directory if (directory / "dog.jpg").is_file() else None


def load(photo: EvalPhoto, darknet: Path | None) -> bytes | None:
    if photo.source == "darknet":
        return (darknet / photo.path).read_bytes() if darknet else None
    return importlib.resources.files(photo.source).joinpath(photo.path).read_bytes()


def available_photos() -> tuple[list[tuple[EvalPhoto, bytes]], list[str]]:
    """The photos that could be read, and the names of those that could not."""
    darknet = darknet_data()
    found: list[tuple[EvalPhoto, bytes]] = []
    missing: list[str] = []
    for photo in PHOTOS:
        data = load(photo, darknet)
        if data is None:
            missing.append(photo.name)
        else:
            found.append((photo, data))
    return found, missing
