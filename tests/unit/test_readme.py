"""The README's provider table is generated from the registry; this keeps the two in step."""

from __future__ import annotations

import re
from pathlib import Path

from autotag.cli.providers import describe, markdown_table
from autotag.providers import available

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_provider_table_matches_the_registry():
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- providers:start[^>]*-->\n(.*?)\n<!-- providers:end -->", text, re.S)
    assert match, "README lost its provider table markers"
    expected = markdown_table([describe(p) for p in available()])
    assert match.group(1).strip() == expected, "regenerate with: uv run autotag providers --markdown"
    assert expected.count("\n") - 1 == len(list(available())) == 9
