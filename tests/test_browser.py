"""The chat UI in a real browser: Debian's chromium driven by Playwright loads the page, asks
questions, follows the [n] links to their evidence cards (also of an earlier answer), checks
each card's paper link, the rough edges (empty and too-long questions, Clear, example
buttons), a phone-sized screen, and hostile abstracts rendered inert.

Screenshots go to test-output/ (gitignored); with UPDATE_SCREENSHOTS=1 the README's
screenshots in docs/screenshots/ are replaced by these, reduced to small palette PNGs.

With CI=true these tests fail when chromium is missing; elsewhere they are skipped."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from hostile import EVIL_ABSTRACT, EVIL_TITLE, HYPER, QUESTION
from PIL import Image

from rag_assistant import Assistant
from rag_assistant.settings import Settings
from rag_assistant.ui import EXAMPLES, serve

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PROJECT = Path(__file__).resolve().parents[1]
OUTPUT = PROJECT / "test-output"
SCREENSHOTS = PROJECT / "docs" / "screenshots"
KV_QUESTION = "Which papers compress the KV cache, and how?"
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def screenshot(target, name: str, *, publish: bool = True, **options) -> None:
    """Save a screenshot of a page or element to test-output/; with UPDATE_SCREENSHOTS=1 the
    ones the README shows (``publish``) also to docs/screenshots/ as small palette PNGs."""
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / f"{name}.png"
    target.screenshot(path=str(path), animations="disabled", **options)
    if publish and os.environ.get("UPDATE_SCREENSHOTS") == "1":
        from PIL import Image

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            small = image.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
            small.save(SCREENSHOTS / f"{name}.png", optimize=True)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing; scripts/test.sh installs it with apt-get")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, bundled_home):
    base = tmp_path_factory.mktemp("ui-browser")
    home = base / "home"
    shutil.copytree(bundled_home, home)
    assistant = Assistant(Settings(home=home, answer={"llm": "offline"}))
    evil = base / "evil.jsonl"
    record = {"title": EVIL_TITLE, "abstract": EVIL_ABSTRACT, "url": "javascript:window.__xss=5"}
    evil.write_text(json.dumps(record) + "\n")
    assistant.ingest([evil])
    app, url = serve(assistant, port=free_port(), block=False)
    yield url
    app.close()


def open_page(browser, url: str, viewport: dict):
    page = browser.new_page(viewport=viewport)
    page.goto(url)
    page.wait_for_selector("#question textarea", timeout=30_000)
    page.locator("#status-line").get_by_text(re.compile(r"\d+ papers")).wait_for(timeout=30_000)
    return page


@pytest.fixture
def page(browser, app_url):
    page = open_page(browser, app_url, DESKTOP)
    yield page
    page.close()


def bot_messages(page):
    return page.locator("#chat .message.bot")


def ask(page, question: str) -> None:
    """Ask and wait for the checked answer (its evidence section for this turn)."""
    answers = bot_messages(page).count()
    turn = page.locator("#evidence section.turn").count() + 1
    page.fill("#question textarea", question)
    page.press("#question textarea", "Enter")
    page.wait_for_selector(f"#evidence #turn-{turn}", state="attached", timeout=60_000)
    page.wait_for_function(
        f"document.querySelectorAll('#chat .message.bot').length > {answers}", timeout=30_000
    )
    bot_messages(page).last.get_by_text("Sources:").wait_for(timeout=30_000)


def in_view(page, locator) -> bool:
    box = locator.bounding_box()
    size = page.viewport_size
    return (
        box is not None
        and box["y"] >= 0
        and box["y"] + box["height"] <= size["height"]
        and box["x"] >= 0
        and box["x"] + box["width"] <= size["width"]
    )


def source_titles(message) -> dict[int, str]:
    """The numbered sources listed under an answer in the chat."""
    text = message.inner_text()
    return {int(n): t.strip() for n, t in re.findall(r"^\[(\d+)\] (.+)$", text, re.M)}


def test_a_question_gets_a_cited_answer_and_its_evidence(page):
    status = page.locator("#status-line").inner_text()
    assert "531 papers" in status and "Offline extractive" in status
    screenshot(page, "first-page")
    ask(page, QUESTION)
    chat = page.locator("#chat")
    text = chat.inner_text()
    assert "Offline extractive" in text and "cited 1 of the 5 papers retrieved" in text
    assert f"[1] {HYPER}" in text
    assert "\\[" not in text  # markdown escapes do not show

    card = page.locator("#card-1-1")
    assert card.locator(".paper-title").inner_text() == f"[1] {HYPER}"
    score = card.locator(".score")
    assert re.fullmatch(r"match (0\.\d\d|1\.00)", score.inner_text())
    assert "1 is the paper that matched this question best" in score.get_attribute("title")
    assert card.locator("blockquote mark").count() >= 1
    abstract = card.locator("details .abstract")
    assert not abstract.is_visible()
    card.locator("details summary").click()
    assert abstract.is_visible() and "HyperAttention" in abstract.inner_text()


def test_numbers_lead_to_their_cards_also_in_earlier_answers(page):
    ask(page, KV_QUESTION)
    screenshot(page, "answer")
    first = bot_messages(page).nth(0)
    titles = source_titles(first)
    assert len(titles) >= 2
    marker = first.locator("a.cite", has_text="[2]").first
    assert marker.get_attribute("title") == f"[2] {titles[2]}"  # hovering shows the title
    marker.click()
    card = page.locator("#card-1-2")
    page.wait_for_function("document.getElementById('card-1-2').classList.contains('highlight')")
    page.wait_for_function(
        "(() => { const r = document.getElementById('card-1-2').getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= window.innerHeight; })()",
        timeout=10_000,
    )
    assert in_view(page, card)
    assert card.locator(".paper-title").inner_text() == f"[2] {titles[2]}"
    assert page.locator("#evidence .paper.highlight").count() == 1
    screenshot(page.locator("#evidence"), "evidence")

    # a follow-up: its own numbers, and the first answer's numbers still lead to its papers
    ask(page, "How does HyperAttention approximate attention in near-linear time?")
    second = bot_messages(page).nth(1)
    assert source_titles(second)[1] == HYPER
    assert page.locator("#turn-1").is_hidden() and page.locator("#turn-2").is_visible()
    for n, title in titles.items():
        first.locator("a.cite", has_text=f"[{n}]").first.click()
        card = page.locator(f"#card-1-{n}")
        card.wait_for(state="visible")
        assert page.locator("#turn-2").is_hidden()
        assert card.locator(".paper-title").inner_text() == f"[{n}] {title}"
        assert "highlight" in card.get_attribute("class")
    # clicking the later answer shows its evidence again
    second.locator("p").first.click()
    page.locator("#turn-2").wait_for(state="visible")
    assert page.locator("#turn-1").is_hidden()


def test_every_card_has_a_working_paper_link(page):
    ask(page, KV_QUESTION)
    cards = page.locator("#turn-1 .paper")
    assert cards.count() >= 2
    for i in range(cards.count()):
        card = cards.nth(i)
        title = card.locator(".paper-title").inner_text().split("] ", 1)[1]
        link = card.locator("a.paper-link")
        assert link.count() == 1
        href, label = link.get_attribute("href"), link.inner_text()
        assert link.get_attribute("target") == "_blank"
        if label.startswith("search arXiv"):  # the bundled listings have no url
            parts = urlsplit(href)
            assert (parts.scheme, parts.netloc, parts.path) == ("https", "arxiv.org", "/search/")
            assert parse_qs(parts.query) == {"query": [title], "searchtype": ["title"]}
        else:
            assert href.startswith(("https://", "http://"))


def test_rough_edges_empty_and_long_questions_clear_and_examples(page):
    ask(page, QUESTION)
    messages = page.locator("#chat .message")
    count = messages.count()
    # an empty question adds no bubble and keeps the evidence
    page.fill("#question textarea", "   ")
    page.press("#question textarea", "Enter")
    page.wait_for_timeout(1500)
    assert messages.count() == count and page.locator("#card-1-1").count() == 1
    # a too-long question: an error message of its own, the question still in the box
    long_question = "Which method compresses the KV cache best? " * 120
    page.fill("#question textarea", long_question)
    page.press("#question textarea", "Enter")
    page.wait_for_function(f"document.querySelectorAll('#chat .message').length > {count}")
    assert messages.count() == count + 1
    error = bot_messages(page).last.inner_text()
    assert error.startswith("⚠ Error: the question is") or error.startswith("⚠️ Error:")
    assert "RAG_ASSISTANT" not in error and "shorten it" in error
    assert page.input_value("#question textarea") == long_question
    # the chat's Clear starts a new conversation: the earlier question does not steer
    page.locator('#chat button[aria-label="Clear"]').click()
    page.wait_for_function("document.querySelectorAll('#chat .message').length === 0")
    page.locator("#evidence .evidence-empty").wait_for(timeout=10_000)
    ask(page, "What is LoRA?")
    assert HYPER not in page.locator("#evidence").inner_text()
    assert page.locator("#turn-1").count() == 1 and page.locator("#turn-2").count() == 0
    # example questions are shown whole and ask when clicked
    buttons = page.locator("button.example-q")
    assert [buttons.nth(i).inner_text() for i in range(buttons.count())] == EXAMPLES
    buttons.nth(1).click()
    page.locator("#turn-2").wait_for(state="attached", timeout=60_000)
    assert "SnapKV" in page.locator("#turn-2").inner_text()


def test_a_phone_shows_the_question_box_and_the_latest_answer_first(browser, app_url):
    page = open_page(browser, app_url, PHONE)
    try:
        box = page.locator("#question textarea")
        assert page.evaluate("window.scrollY") == 0
        assert in_view(page, box)
        ask(page, KV_QUESTION)
        page.wait_for_timeout(500)
        assert page.evaluate("window.scrollY") == 0
        assert in_view(page, box)
        latest = bot_messages(page).last.locator("a.cite").last
        assert in_view(page, latest)  # the chat scrolled to the end of the latest answer
        screenshot(page, "mobile")
    finally:
        page.close()


def test_hostile_title_and_abstract_render_inert(page):
    ask(page, "What is quokka sorting?")
    evidence = page.locator("#evidence")
    chat = page.locator("#chat")
    evidence.locator("details summary").first.click()
    assert evidence.locator(".paper-title").first.inner_text() == f"[1] {EVIL_TITLE}"
    assert '<img src=x onerror="window.__xss=2">' in evidence.inner_text()
    chat_text = chat.inner_text()
    assert "<script>window.__xss=4</script>" in chat_text
    assert "[stable](javascript:window.__xss=3)" in chat_text
    for area in (chat, evidence):
        assert area.locator("script, img[src='x'], a[href^='javascript' i]").count() == 0
    assert page.evaluate("window.__xss") is None
    screenshot(page, "ui-hostile-abstract", publish=False, full_page=True)


def test_uploads_report_in_the_chat_and_update_the_status(page, tmp_path):
    """Last in this file: it adds a paper to the shared index."""
    image = tmp_path / "papers.jsonl"
    Image.new("RGB", (8, 8), "blue").save(image, format="PNG")
    good = tmp_path / "wombat.jsonl"
    good.write_text(
        json.dumps({"title": "Wombat Caching", "abstract": "Wombat caching is fast."}) + "\n"
    )
    upload = page.locator("#upload input[type=file]")
    for file, expected in (
        (image, "papers.jsonl is a PNG image (image/png), not text"),
        (good, "Added papers from wombat.jsonl."),
    ):
        count = page.locator("#chat .message").count()
        upload.set_input_files(str(file))
        page.locator("#upload").get_by_text(file.name).first.wait_for(timeout=60_000)
        page.click("#add-papers")
        page.wait_for_function(
            f"document.querySelectorAll('#chat .message').length > {count}", timeout=60_000
        )
        message = bot_messages(page).last.inner_text()
        assert expected in message
        assert "/uploads" not in message and "--" not in message
    page.locator("#status-line").get_by_text("532 papers").wait_for(timeout=30_000)
