"""The web console in a real browser (Debian's headless Chromium, driven by Playwright) against the
local stack: upload with boto3 -> the image appears with its tags without a reload -> correct a tag
in the page -> the object's S3 tags and GET /v1/tags/{tag}/images reflect it. Also: bounding boxes,
search with pagination, failed images with a retry, keyboard use and phone width."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from autotag.models import BoundingBox, Tag

from tests.e2e.conftest import FAST_CONFIG, RunningStack, jpeg, start_stack, wait_for
from tests.support.browser import chromium, require_chromium

pytestmark = pytest.mark.e2e

LIVE_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    require_chromium()
    running = start_stack(tmp_path_factory.mktemp("console"), FAST_CONFIG)
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def browser(stack: RunningStack) -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    opened.screenshot(path=str(tmp_path / "last.png"), full_page=True)
    context.close()
    assert errors == [], f"the page raised: {errors}"


def console_url(stack: RunningStack, fragment: str = "/", query: str = "") -> str:
    return f"{stack.state.api_url}console/{query}#{fragment}"


def sign_in(page: Any, stack: RunningStack, fragment: str = "/", query: str = "") -> None:
    """Open the console and type the API key into its labelled field, as a person does."""
    page.goto(console_url(stack, fragment, query))
    page.get_by_label("API key").fill(stack.state.api_key)
    page.get_by_role("button", name="Use key").click()
    assert page.evaluate("sessionStorage.getItem('autotag.apiKey')") == stack.state.api_key


def api(stack: RunningStack, path: str, **params: Any) -> Any:
    reply = httpx.get(
        f"{stack.state.api_url}{path}", params=params, headers={"x-api-key": stack.state.api_key}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def object_tags(stack: RunningStack, key: str) -> dict[str, str]:
    tagging = stack.client("s3").get_object_tagging(Bucket=stack.bucket, Key=key)
    return {t["Key"]: t["Value"] for t in tagging["TagSet"]}


def test_upload_appears_live_then_a_correction_reaches_s3_and_the_index(
    stack: RunningStack, page: Any
) -> None:
    sign_in(page, stack)
    page.get_by_role("heading", name="Recently tagged").wait_for()
    # The page is open before the upload: the image must show up without a reload.
    key = f"browser/{int(time.time() * 1000)}.jpg"
    s3 = stack.client("s3")
    s3.put_object(
        Bucket=stack.bucket, Key=key, Body=jpeg((200, 40, 40), (320, 240)), ContentType="image/jpeg"
    )
    s3.put_object_tagging(
        Bucket=stack.bucket, Key=key, Tagging={"TagSet": [{"Key": "owner", "Value": "ann"}]}
    )
    card = page.locator(f'#recent-grid li[data-key="{key}"]')
    card.wait_for(timeout=LIVE_TIMEOUT_MS)
    record = stack.wait_record(key)
    provider_tags = [t.name for t in record.tags]
    assert provider_tags
    chips = card.locator(".chip").all_inner_texts()
    assert any(chip.startswith(provider_tags[0]) for chip in chips)
    card.locator("img[src^='data:image/']").wait_for()  # the thumbnail arrived

    # Open it with the keyboard.
    card.get_by_role("link").focus()
    page.keyboard.press("Enter")
    table = page.locator("#tags-in-force")
    table.wait_for()
    assert table.locator("tbody th").all_inner_texts() == [t.name for t in record.tags_in_force]

    removed = provider_tags[0]
    page.get_by_role("button", name=f"Remove tag {removed}").click()
    page.get_by_role("status").filter(has_text=f"Removed “{removed}”").wait_for()
    page.get_by_label("Add a tag").fill("Ruby Sunset")
    page.keyboard.press("Enter")
    page.get_by_role("status").filter(has_text="Added “Ruby Sunset”").wait_for()
    assert "Ruby Sunset" in table.locator("tbody th").all_inner_texts()
    assert removed not in table.locator("tbody th").all_inner_texts()
    decided = page.locator("#corrections tbody").inner_text()
    assert "apikey:" in decided
    assert stack.state.api_key not in decided  # who decided is the key's id, never the key

    tags = object_tags(stack, key)
    assert tags["owner"] == "ann"
    assert tags["autotag:Ruby Sunset"] == "1.00"
    assert f"autotag:{removed}" not in tags
    assert key in [hit["key"] for hit in api(stack, "v1/tags/ruby sunset/images")["items"]]
    assert key not in [hit["key"] for hit in api(stack, f"v1/tags/{removed}/images")["items"]]


def test_bounding_boxes_title_and_description_are_shown(stack: RunningStack, page: Any) -> None:
    key = "browser/boxes.jpg"
    stack.client("s3").put_object(
        Bucket=stack.bucket, Key=key, Body=jpeg((30, 90, 200), (400, 300)), ContentType="image/jpeg"
    )
    tagged = stack.wait_record(key)
    # What a provider that locates objects (Rekognition, Google Vision) stores for the image.
    store = stack.store()
    store.put(
        tagged.model_copy(
            update={
                "tags": (
                    Tag(
                        name="ball",
                        confidence=0.91,
                        provider="rekognition",
                        boxes=(BoundingBox(left=0.25, top=0.1, width=0.5, height=0.4),),
                    ),
                    *tagged.tags,
                ),
                "title": "A blue ball",
                "description": "One ball on a blue ground",
                "updated_at": datetime.now(UTC),
            }
        )
    )
    sign_in(page, stack, f"/image/{stack.bucket}/{key.replace('/', '%2F')}")
    page.get_by_role("heading", name="A blue ball").wait_for()
    box = page.locator('.box[data-tag="ball"]')
    box.wait_for()
    style = box.get_attribute("style") or ""
    assert "left:25%" in style.replace(" ", "")
    assert "width:50%" in style.replace(" ", "")
    assert page.get_by_text("One ball on a blue ground").is_visible()
    assert page.locator("#provider-tags").get_by_text("rekognition").count() >= 1
    # Keyboard: the first Tab reaches the skip link, which moves focus without leaving the page.
    page.reload()  # the key stays in the tab's sessionStorage
    page.locator('.box[data-tag="ball"]').wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "view"
    assert page.evaluate("location.hash").startswith("#/image/")


def test_search_pages_through_results(stack: RunningStack, page: Any) -> None:
    s3 = stack.client("s3")
    for n in range(3):
        key = f"browser/search-{n}.jpg"
        s3.put_object(
            Bucket=stack.bucket, Key=key, Body=jpeg((20 + n, 180, 20), (200, 150)), ContentType="image/jpeg"
        )
        stack.wait_record(key)
    tag = stack.wait_record("browser/search-0.jpg").tags[0].name
    total = len(api(stack, f"v1/tags/{tag}/images", limit=100)["items"])
    assert total >= 3
    sign_in(page, stack, query="?page_size=2")
    page.get_by_label("Search by tag").fill(tag)
    page.get_by_label("Search by tag").press("Enter")
    results = page.get_by_role("list", name=f"Images tagged {tag}")
    expect_count(results.locator("li.card"), 2)
    next_page = page.get_by_role("button", name="Next page")
    assert next_page.is_enabled()
    seen = set(results.locator("li.card").evaluate_all("cards => cards.map(c => c.dataset.key)"))
    next_page.click()
    page.get_by_text("Page 2", exact=True).wait_for()
    second = set(results.locator("li.card").evaluate_all("cards => cards.map(c => c.dataset.key)"))
    assert second
    assert not (seen & second)
    page.get_by_role("button", name="Previous page").click()
    page.get_by_text("Page 1", exact=True).wait_for()


def test_failed_images_show_their_reason_and_can_be_retried(stack: RunningStack, page: Any) -> None:
    key = "browser/broken.jpg"
    stack.client("s3").put_object(
        Bucket=stack.bucket, Key=key, Body=b"\xff\xd8\xff\xe0 not really a jpeg", ContentType="image/jpeg"
    )
    stack.wait_record(key, status="failed")
    sign_in(page, stack, "/failed")
    item = page.locator(f'#failed-list li[data-key="{key}"]')
    item.wait_for()
    assert "corrupt_image" in item.inner_text()
    item.get_by_role("button", name=f"Retry {key}").click()
    item.get_by_text("Still failing").wait_for(timeout=LIVE_TIMEOUT_MS)
    assert "corrupt_image" in item.inner_text()


def test_readable_at_phone_width_and_labelled(stack: RunningStack, browser: Any) -> None:
    key = "browser/phone.jpg"
    stack.client("s3").put_object(
        Bucket=stack.bucket, Key=key, Body=jpeg((120, 120, 20), (640, 480)), ContentType="image/jpeg"
    )
    stack.wait_record(key)
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    try:
        sign_in(page, stack, f"/image/{stack.bucket}/{key.replace('/', '%2F')}")
        page.locator("#tags-in-force").wait_for()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page scrolls sideways by {overflow}px at phone width"
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input, button')].filter(el => {
                 if (el.closest('[hidden]')) return false;
                 const byLabel = el.id && document.querySelector(`label[for="${el.id}"]`);
                 return !(byLabel || el.getAttribute('aria-label') || el.textContent.trim());
               }).map(el => el.outerHTML)"""
        )
        assert unlabelled == []
    finally:
        context.close()


def test_page_without_a_key_asks_for_one_and_gets_no_data(stack: RunningStack, page: Any) -> None:
    page.goto(console_url(stack))
    assert page.get_by_label("API key").is_visible()
    page.get_by_label("API key").fill("not-the-key")
    page.get_by_role("button", name="Use key").click()
    page.get_by_role("status").filter(has_text=re.compile("API key|Forbidden", re.I)).wait_for()
    assert page.locator("#recent-grid li.card").count() == 0
    # Only the static files are keyless: every data route still wants the key.
    assert httpx.get(console_url(stack), timeout=30).status_code == 200
    for path in ("v1/images", f"v1/thumbnails/{stack.bucket}/x.jpg", "v1/tags/x/images"):
        assert httpx.get(f"{stack.state.api_url}{path}", timeout=30).status_code == 403, path
    patch = httpx.patch(f"{stack.state.api_url}v1/images/{stack.bucket}/x.jpg/tags", json={"add": ["x"]})
    assert patch.status_code == 403


def expect_count(locator: Any, count: int) -> None:
    wait_for(lambda: locator.count() == count, timeout=LIVE_TIMEOUT_MS / 1000, what=f"{count} items")
