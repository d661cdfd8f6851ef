"""`make demo`, step 8: the web console in headless Chromium (Debian's package), one correction made
in the page, and screenshots saved where the demo says. Skipped, with the reason, without Chromium."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / ".autotag" / "demo-console"

sys.path.insert(0, str(ROOT))

from tests.support.browser import chromium, chromium_missing  # noqa: E402


def capture(api_url: str, api_key: str, bucket: str, tagged_key: str, failed_key: str) -> list[Path]:
    """Screenshots of the console's pages; returns their paths. Raises when a page does not show."""
    missing = chromium_missing()
    if missing is not None:
        print(f"  skipped: {missing}")
        return []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    console = f"{api_url}console/"
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(console)
        page.get_by_label("API key").fill(api_key)
        page.get_by_role("button", name="Use key").click()
        page.locator("#recent-grid li.card img[src^='data:']").first.wait_for(timeout=30_000)
        saved.append(_shot(page, "1-recent.png"))

        page.goto(f"{console}#/image/{quote(bucket, safe='')}/{quote(tagged_key, safe='')}")
        page.locator("#tags-in-force").wait_for()
        page.get_by_label("Add a tag").fill("checked by a person")
        page.keyboard.press("Enter")
        page.get_by_role("status").filter(has_text="Added").wait_for()
        saved.append(_shot(page, "2-image-corrected.png", full_page=True))

        page.goto(f"{console}#/failed")
        page.locator(f'#failed-list li[data-key="{failed_key}"]').wait_for()
        saved.append(_shot(page, "3-failed.png"))
        context.close()

        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        page = phone.new_page()
        page.goto(f"{console}#key={quote(api_key, safe='')}")
        page.locator("#recent-grid li.card img[src^='data:']").first.wait_for(timeout=30_000)
        saved.append(_shot(page, "4-phone.png", full_page=True))
        phone.close()
    return saved


def _shot(page: Any, name: str, *, full_page: bool = False) -> Path:
    # Every thumbnail in view has arrived (or failed visibly) before the picture is taken.
    page.wait_for_function(
        "() => [...document.images].every(i => i.complete && (i.src || i.classList.contains('missing')))"
    )
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path
