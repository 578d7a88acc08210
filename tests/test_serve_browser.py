"""The web explorer in a real browser: Debian's headless Chromium driven by Playwright, against
a real ``embstore serve``. Skips when /usr/bin/chromium is missing, unless EMBSTORE_REQUIRE_ALL=1
(CI), where it fails. Screenshots go to $EMBSTORE_SCREENSHOTS or a temporary folder (printed)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from embstore import Store

CHROMIUM = Path("/usr/bin/chromium")
REQUIRED = os.environ.get("EMBSTORE_REQUIRE_ALL") == "1"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def missing(reason: str):
    if REQUIRED:
        pytest.fail(f"{reason} (EMBSTORE_REQUIRE_ALL=1: browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        missing("needs Debian's chromium at /usr/bin/chromium: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("needs Playwright for Python: pip install playwright (never 'playwright install')")
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        missing("needs the serve extra: pip install 'embstore[serve]'")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(browser, small_store_path, tmp_path_factory):
    from served import running_server

    with running_server(small_store_path, tmp_path_factory.mktemp("serve") / "serve.log") as running:
        yield running


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory, request) -> Path:
    folder = Path(os.environ.get("EMBSTORE_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # shown in the test run's output, not captured
        print(f"\nexplorer screenshots: {folder}")


@pytest.fixture(scope="module")
def store(small_store_path):
    with Store.open(small_store_path) as opened:
        yield opened


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    opened = context.new_page()
    opened.errors = []
    opened.requests = []
    opened.on("pageerror", lambda error: opened.errors.append(str(error)))
    opened.on("request", lambda request: opened.requests.append(request.url))
    yield opened
    context.close()
    assert not opened.errors, opened.errors
    # Offline: everything the page asked for came from this server (no CDN).
    assert all(url.startswith(server.url + "/") or url.startswith("data:") for url in opened.requests), opened.requests


def visit(page, server, path: str) -> None:
    page.goto(server.url + path)
    shown(page)


def shown(page) -> None:
    """Wait until the view named by the URL is drawn (the page marks it when done)."""
    page.wait_for_function("() => document.body.dataset.shown === (location.search || '?')", timeout=30_000)


def listed(page) -> list[str]:
    return page.locator("#results button.word").evaluate_all("nodes => nodes.map(n => n.dataset.word)")


def mapped(page) -> list[str]:
    return page.locator("#map circle").evaluate_all("nodes => nodes.map(n => n.dataset.word)")


def test_type_king_see_queen(page, server, store, screenshots):
    visit(page, server, "/")
    page.click("#search")
    page.keyboard.type("kin")
    page.wait_for_selector("#completions li[data-word='king']")
    page.keyboard.type("g")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/\?word=king$"))
    shown(page)
    assert "queen" in listed(page)
    assert listed(page) == store.nearest("king", k=10).words()
    page.screenshot(path=str(screenshots / "nearest-king.png"))
    # A click on a neighbour re-centres on it.
    page.click("#results button[data-word='queen']")
    page.wait_for_url(re.compile(r".*/\?word=queen$"))
    shown(page)
    assert listed(page) == store.nearest("queen", k=10).words()
    page.go_back()
    shown(page)
    assert page.input_value("#search") == "king" and listed(page)[:2] == ["prince", "queen"]


def test_analogy_man_king_woman_gives_queen_first(page, server, store, screenshots):
    visit(page, server, "/")
    page.fill("#a", "man")
    page.fill("#b", "king")
    page.fill("#c", "woman")
    page.click("#analogy-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/\?a=man&b=king&c=woman$"))
    shown(page)
    assert listed(page)[0] == "queen"
    assert listed(page) == store.analogy("man", "king", "woman", k=10).words()
    assert page.locator("#map line.arrow").count() == 2
    page.screenshot(path=str(screenshots / "analogy.png"))


def test_the_map_draws_one_point_per_word(page, server, store, screenshots):
    visit(page, server, "/?word=king&k=5&add=paris")
    expected = ["king"] + store.nearest("king", k=5).words() + ["paris"]
    assert sorted(mapped(page)) == sorted(expected)
    assert page.locator("#map text.label").count() == len(expected)
    # Positions follow the projection the API gives (the same as `embstore plot`): king's
    # neighbours lie closer to it on screen than paris does.
    centre = box_centre(page, "king")
    far = distance(centre, box_centre(page, "paris"))
    assert all(distance(centre, box_centre(page, word)) < far for word in expected[1:-1])
    # Hover shows the word and its score; zoom spreads the points; a click re-centres.
    page.hover("#map circle[data-word='queen']")
    assert re.fullmatch(r"queen\s+cosine 0\.78\d\d", page.inner_text("#tooltip"))
    before = distance(box_centre(page, "king"), box_centre(page, "paris"))
    page.click("#zoom-in")
    assert distance(box_centre(page, "king"), box_centre(page, "paris")) == pytest.approx(before * 1.25, rel=0.02)
    page.screenshot(path=str(screenshots / "map-zoomed.png"))
    page.click("#zoom-reset")
    page.select_option("#projection", "tsne")
    page.wait_for_url(re.compile(r".*proj=tsne.*"))
    shown(page)
    assert sorted(mapped(page)) == sorted(expected) and "t-SNE of 7 words" in page.inner_text("#map-caption")
    page.click("#map circle[data-word='paris']", force=True)
    page.wait_for_url(re.compile(r".*word=paris.*"))
    shown(page)
    assert listed(page) == store.nearest("paris", k=5).words()


def test_a_bad_word_shows_the_suggestions(page, server, store, screenshots):
    visit(page, server, "/?word=kingg")
    assert page.is_visible("#message")
    suggestions = page.locator("#message button.suggestion").evaluate_all("nodes => nodes.map(n => n.dataset.word)")
    assert suggestions == server.get("/api/nearest?word=kingg")[1]["suggestions"] and "king" in suggestions
    assert "unknown word 'kingg'" in page.inner_text("#message")
    page.screenshot(path=str(screenshots / "unknown-word.png"))
    page.click("#message button[data-word='king']")
    shown(page)
    assert listed(page) == store.nearest("king", k=10).words() and page.is_hidden("#message")
    # An unknown word added to the map is named, and the map keeps the others.
    visit(page, server, "/?word=king&k=3&add=paris+zzqqxx")
    assert "unknown word 'zzqqxx'" in page.inner_text("#message")
    assert sorted(mapped(page)) == sorted(["king", "paris"] + store.nearest("king", k=3).words())
    assert page.url.endswith("/?word=king&k=3&add=paris")


@pytest.mark.parametrize("path", ["/?word=king", "/?word=Paris&k=5&add=berlin+rome", "/?word=water&k=5&proj=tsne",
                                  "/?a=france&b=paris&c=italy&k=5"])
def test_a_views_url_shows_the_same_view_after_a_reload(page, server, path):
    visit(page, server, path)
    first = (listed(page), positions(page), page.inner_text("#results-title"))
    assert first[0] and len(first[1]) == len(first[0]) + (1 if "word=" in path else 3) + path.count("add=") * 2
    page.reload()
    shown(page)
    assert (listed(page), positions(page), page.inner_text("#results-title")) == first


def positions(page) -> dict:
    return dict(page.locator("#map circle").evaluate_all(
        "nodes => nodes.map(n => [n.dataset.word, [n.getAttribute('cx'), n.getAttribute('cy')]])"))


def box_centre(page, word: str) -> tuple[float, float]:
    box = page.locator(f"#map circle[data-word='{word}']").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def distance(one, two) -> float:
    return ((one[0] - two[0]) ** 2 + (one[1] - two[1]) ** 2) ** 0.5
