"""The chat UI in a real browser: Debian's chromium driven by Playwright loads the page, asks a
question, sees the cited answer and its evidence, and finds hostile abstracts rendered inert.
Screenshots go to test-output/ (gitignored).

With CI=true these tests fail when chromium is missing; elsewhere they are skipped."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
from hostile import EVIL_ABSTRACT, EVIL_TITLE, HYPER, QUESTION

from rag_assistant import Assistant
from rag_assistant.settings import Settings
from rag_assistant.ui import serve

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
OUTPUT = Path(__file__).resolve().parents[1] / "test-output"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture
def page(browser, app_url):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(app_url)
    page.wait_for_selector("#question textarea", timeout=30_000)
    yield page
    page.close()


def ask(page, question: str) -> None:
    page.fill("#question textarea", question)
    page.press("#question textarea", "Enter")
    page.wait_for_selector("#evidence .paper", timeout=60_000)


def test_a_question_gets_a_cited_answer_and_its_evidence(page):
    OUTPUT.mkdir(exist_ok=True)
    status = page.locator("#status-line")
    status.get_by_text("531 papers").wait_for(timeout=30_000)
    assert "Offline extractive" in status.inner_text()
    ask(page, QUESTION)
    chat = page.locator("#chat")
    chat.get_by_text("Sources:").wait_for(timeout=30_000)
    text = chat.inner_text()
    assert "Offline extractive" in text
    assert "[1]" in text and f"[1] {HYPER}" in text
    assert "\\[" not in text  # markdown escapes do not show

    card = page.locator('#evidence .paper[data-number="1"]')
    assert card.locator(".paper-title").inner_text() == f"[1] {HYPER}"
    assert "score" in card.locator(".meta").inner_text()
    assert card.locator("blockquote mark").count() >= 1
    abstract = card.locator("details .abstract")
    assert not abstract.is_visible()
    card.locator("details summary").click()
    assert abstract.is_visible() and "HyperAttention" in abstract.inner_text()
    page.screenshot(path=str(OUTPUT / "ui-answer.png"), full_page=True)


def test_hostile_title_and_abstract_render_inert(page):
    OUTPUT.mkdir(exist_ok=True)
    ask(page, "What is quokka sorting?")
    page.locator("#chat").get_by_text("Sources:").wait_for(timeout=30_000)
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
    page.screenshot(path=str(OUTPUT / "ui-hostile-abstract.png"), full_page=True)
