"""`autotag tag IMAGE --provider NAME --config cfg.toml --json` against each seed provider's double."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from tests.support.provider_servers import CoreVizServer, ImageDescriberServer, ImageKitServer, PixLabServer

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-c", "import sys; from autotag.cli import main; sys.exit(main())"]
CASES = {
    "imagedescriber": (ImageDescriberServer, {"api_key": "cli-k1"}, "cat"),
    "coreviz": (CoreVizServer, {"api_key": "cli-k2"}, "person"),
    "pixlab": (PixLabServer, {"api_key": "cli-k3"}, "tree"),
    "imagekit": (ImageKitServer, {"private_key": "private_cli-k4"}, "Toy"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_cli_tags_with_the_provider_pointed_at_its_double(tmp_path, name):
    server_class, secret, first_tag = CASES[name]
    image = tmp_path / "img.jpg"
    Image.new("RGB", (200, 150), (10, 120, 200)).save(image)
    with server_class(**secret) as server:
        options = f'options = {{ upload_endpoint = "{server.url}" }}\n' if name == "imagekit" else ""
        config = tmp_path / "cfg.toml"
        config.write_text(f'[[providers]]\nname = "{name}"\nendpoint = "{server.url}"\n{options}')
        env = {**os.environ, f"AUTOTAG_SECRET_{name.upper()}": json.dumps(secret)}
        completed = subprocess.run(
            [*CLI, "tag", str(image), "--provider", name, "--config", str(config), "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        assert server.calls >= 1
    document = json.loads(completed.stdout.splitlines()[0])
    assert document["tags"][0]["name"] == first_tag
    assert document["tags"][0]["provider"] == name
    assert next(iter(secret.values())) not in completed.stdout + completed.stderr
