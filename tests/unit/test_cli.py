"""The `autotag` command line, driven through main(argv)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from autotag.cli import COMMAND_MODULES, main
from autotag.config import config_json_schema

from tests.support import images

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def files(tmp_path):
    made = {
        "photo.jpg": images.camera_jpeg(800, 600),
        "alpha.png": images.png_with_alpha(),
        "gray.jpg": images.grayscale_bytes(),
        "text.jpg": b"hello, this is not an image\n",
        "truncated.jpg": images.truncated_jpeg(),
        "empty.jpg": b"",
        "bomb.png": images.bomb_png(30000, 30000),
    }
    for name, data in made.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def documents(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def assert_one_line_error(err: str, code: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"autotag: error: {code}: "), err
    assert "Traceback" not in err


def test_photo_json_with_no_config(capsys, files):
    status, out, err = run(capsys, "tag", str(files / "photo.jpg"), "--json")
    assert status == 0, err
    [document] = documents(out)
    assert document["image"] == {
        "path": str(files / "photo.jpg"),
        "format": "jpeg",
        "content_type": "image/jpeg",
        "width": 800,
        "height": 600,
        "bytes": (files / "photo.jpg").stat().st_size,
        "orientation": 1,
        "sha256": document["image"]["sha256"],
    }
    assert len(document["image"]["sha256"]) == 64
    names = {t["name"] for t in document["tags"]}
    assert {"landscape", "camera:Canon EOS 5D", "gps", "flash"} <= names
    assert any("colour" in t["categories"] for t in document["tags"])
    # No config: the vision model and basic, both run, both ok.
    statuses = {p["provider"]: p["status"] for p in document["providers"]}
    assert statuses == {"efficientnet": "ok", "basic": "ok"}
    # What is in the picture first, then basic's attributes (orientation, colours, camera).
    first_attribute = next(i for i, t in enumerate(document["tags"]) if t["sources"] == ["basic"])
    assert all(t["sources"] == ["basic"] for t in document["tags"][first_attribute:])


def test_transparent_png_and_grayscale(capsys, files):
    status, out, _ = run(capsys, "tag", str(files / "alpha.png"), str(files / "gray.jpg"), "--json")
    assert status == 0
    alpha, gray = documents(out)
    assert "transparent" in {t["name"] for t in alpha["tags"]}
    assert "monochrome" in {t["name"] for t in gray["tags"]}
    assert "transparent" not in {t["name"] for t in gray["tags"]}


def test_table_output(capsys, files):
    status, out, _ = run(capsys, "tag", str(files / "photo.jpg"))
    assert status == 0
    assert "JPEG 800x600" in out
    assert "TAG" in out
    assert "CONFIDENCE" in out
    line = next(line for line in out.splitlines() if "landscape" in line)
    assert line.split()[-2:] == ["1.00", "basic"]


def test_options_are_applied(capsys, files):
    status, out, _ = run(
        capsys, "tag", str(files / "photo.jpg"), "--json", "--max-tags", "2", "--provider", "basic"
    )
    assert status == 0
    assert len(documents(out)[0]["tags"]) == 2
    status, out, _ = run(capsys, "tag", str(files / "photo.jpg"), "--json", "--min-confidence", "0.99")
    assert all(t["confidence"] >= 0.99 for t in documents(out)[0]["tags"])


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("text.jpg", "unsupported_format"),
        ("truncated.jpg", "corrupt_image"),
        ("empty.jpg", "empty_image"),
        ("bomb.png", "decompression_bomb"),
        ("missing.jpg", "file_not_found"),
    ],
)
def test_bad_images_give_one_line_errors(capsys, files, name, code):
    status, out, err = run(capsys, "tag", str(files / name))
    assert status != 0
    assert out == ""
    assert_one_line_error(err, code)
    assert name in err


def test_text_file_error_says_what_it_looks_like(capsys, files):
    _, _, err = run(capsys, "tag", str(files / "text.jpg"))
    assert "text/plain" in err


def test_every_image_is_processed_and_any_failure_fails_the_run(capsys, files):
    status, out, err = run(
        capsys, "tag", str(files / "photo.jpg"), str(files / "empty.jpg"), str(files / "gray.jpg"), "--json"
    )
    assert status != 0
    assert [Path(d["image"]["path"]).name for d in documents(out)] == ["photo.jpg", "gray.jpg"]
    assert_one_line_error(err, "empty_image")


def test_unknown_provider(capsys, files):
    status, out, err = run(capsys, "tag", str(files / "photo.jpg"), "--provider", "nope")
    assert status != 0
    assert out == ""
    assert_one_line_error(err, "unknown_provider")
    assert "unknown provider 'nope'" in err


def test_invalid_config_files(capsys, files, tmp_path):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[[providers]]\nname = 3\n")
    broken_json = tmp_path / "broken.json"
    broken_json.write_text("{")
    for config in (bad_toml, broken_json, tmp_path / "absent.toml"):
        status, out, err = run(capsys, "tag", str(files / "photo.jpg"), "--config", str(config))
        assert status != 0
        assert out == ""
        assert_one_line_error(err, "invalid_config")


def test_config_file_and_a_registered_provider_added_on_request(capsys, files, tmp_path):
    config = tmp_path / "autotag.toml"
    config.write_text('[[providers]]\nname = "basic"\nid = "colours"\nmax_tags = 1\n')
    status, out, _ = run(capsys, "tag", str(files / "photo.jpg"), "--config", str(config), "--json")
    assert status == 0
    [document] = documents(out)
    assert len(document["tags"]) == 1
    assert document["providers"][0]["provider"] == "colours"
    # "basic" is not configured under that id, but it is registered: added with defaults.
    status, out, _ = run(
        capsys, "tag", str(files / "photo.jpg"), "--config", str(config), "--provider", "basic", "--json"
    )
    assert status == 0
    assert len(documents(out)[0]["tags"]) > 1


def test_urls_other_than_https_and_s3_are_refused(capsys):
    status, _, err = run(capsys, "tag", "http://example.test/a.jpg")
    assert status != 0
    assert_one_line_error(err, "unsafe_url")
    status, _, err = run(capsys, "tag", "s3://bucket-only")
    assert status != 0
    assert_one_line_error(err, "bad_s3_uri")


def test_argument_errors_are_usage_errors(capsys, files):
    with pytest.raises(SystemExit) as caught:
        main(["tag", str(files / "photo.jpg"), "--min-confidence", "2"])
    assert caught.value.code == 2
    assert "between 0 and 1" in capsys.readouterr().err


def test_providers_lists_what_is_installed(capsys):
    status, out, _ = run(capsys, "providers")
    assert status == 0
    assert out.splitlines()[0].split()[0] == "PROVIDER"
    assert any(line.split()[0] == "basic" for line in out.splitlines()[1:])
    status, out, _ = run(capsys, "providers", "--json")
    basic = next(p for p in json.loads(out)["providers"] if p["name"] == "basic")
    assert basic["needs_network"] is False
    assert basic["auth"] == "none"
    assert basic["limits"]["max_side"] == 256


def test_config_schema_prints_the_model_schema(capsys):
    status, out, _ = run(capsys, "config", "schema")
    assert status == 0
    assert json.loads(out) == config_json_schema()


def test_config_validate(capsys, tmp_path):
    good = tmp_path / "good.json"
    good.write_text('{"providers": [{"name": "basic"}]}')
    status, out, _ = run(capsys, "config", "validate", str(good))
    assert status == 0
    assert "ok" in out
    bad = tmp_path / "bad.json"
    bad.write_text('{"providers": "basic"}')
    status, _, err = run(capsys, "config", "validate", str(bad))
    assert status != 0
    assert_one_line_error(err, "invalid_config")


@pytest.mark.parametrize("name", ["default.toml", "autotag.example.toml"])
def test_config_validate_accepts_the_deployment_configs_the_local_stack_loads(capsys, name):
    status, out, err = run(capsys, "config", "validate", str(REPO / "config" / name))
    assert status == 0, err
    assert out.startswith(f"{REPO / 'config' / name}: ok (deployment config, stack Autotag; ")
    status, out, _ = run(capsys, "config", "validate", str(REPO / "config" / name), "--json")
    assert status == 0
    assert json.loads(out)["tagging"]["providers"]


def test_config_validate_reports_deployment_config_errors(capsys, tmp_path):
    bad = tmp_path / "deploy.toml"
    bad.write_text('stack_name = "A"\n[queue]\nbatch_size = 0\n')
    status, _, err = run(capsys, "config", "validate", str(bad))
    assert status != 0
    assert_one_line_error(err, "invalid_config")
    assert "queue.batch_size" in err
    (tmp_path / "tagging.toml").write_text('[[providers]]\nname = "basic"\n')
    shared = tmp_path / "shared.json"
    shared.write_text('{"tagging_file": "tagging.toml"}')
    status, out, err = run(capsys, "config", "validate", str(shared))
    assert status == 0, err
    assert "1 provider(s): basic" in out


def test_documented_schema_is_current():
    documented = json.loads((REPO / "docs" / "config.schema.json").read_text())
    assert documented == config_json_schema(), "regenerate: autotag config schema > docs/config.schema.json"


def test_command_modules_are_a_plain_list():
    assert COMMAND_MODULES[:3] == ["autotag.cli.tag", "autotag.cli.providers", "autotag.cli.config"]


def test_show_reports_removed_and_dropped_object_tags():
    from autotag.cli.ops import format_record
    from autotag.store.base import DroppedTag, DroppedTagReason, ImageRecord, ImageStatus, S3TagWrite

    record = ImageRecord(
        bucket="b",
        key="k.jpg",
        status=ImageStatus.TAGGED,
        sequencer="0055AED6DCD90281E5",
        s3_tags=S3TagWrite(
            written={"autotag:dog": "0.90"},
            removed=("autotag:cat",),
            dropped=(
                DroppedTag(key="autotag:pet", value="0.80", reason=DroppedTagReason.TAG_LIMIT),
                DroppedTag(key="autotag:fav", value="", reason=DroppedTagReason.USER_TAG),
            ),
            user_tags_kept=9,
        ),
    )
    text = format_record(record)
    assert "(event 0055AED6DCD90281E5)" in text
    assert "removed   autotag:cat (written by autotag before)" in text
    assert "dropped   autotag:pet=0.80: no free slot (S3 allows 10 tags per object)" in text
    assert "dropped   autotag:fav=: the object's own tag with this key was kept" in text
