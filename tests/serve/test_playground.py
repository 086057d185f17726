"""The playground in a real browser (Debian's chromium, headless, driven by playwright): type a review and read the
label back, equal to `nlplab predict`; ask the language model and watch the tokens stream in, equal to the API's
greedy answer. Skipped where chromium or playwright is missing."""

import shutil

import httpx
import pytest

from nlplab.serve.app import create_app
from nlplab.serve.server import running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def open_page(browser, url):
    page = browser.new_page()
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=15000)
    return page


def test_the_playground_labels_a_review(browser, classifier, tmp_path):
    text = "服务很差，不推荐"
    expected = classifier.predict([text])[0]
    with running(create_app(classifier, "tiny-bow", log=lambda line: None)) as url:
        page = open_page(browser, url)
        assert page.input_value("#mode") == "predict"
        page.fill("#text", text)
        page.click("#run")
        page.wait_for_selector("#label", timeout=15000)
        assert page.text_content("#label").startswith(expected["label"] + " (")
        assert page.locator(".bar").count() == len(expected["probabilities"])
        page.screenshot(path=str(tmp_path / "classify.png"))


def test_the_playground_streams_a_chat_answer(browser, lm):
    with running(create_app(lm, "tiny-gpt", log=lambda line: None)) as url:
        page = open_page(browser, url)
        page.select_option("#mode", "chat")
        page.fill("#text", "今天天气")
        page.fill("#temperature", "0")
        page.fill("#max-tokens", "12")
        page.click("#run")
        page.wait_for_selector("#generated[data-done='1']", timeout=15000)
        shown = page.text_content("#generated")
        answer = httpx.post(url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "今天天气"}],
                                                                "temperature": 0, "max_tokens": 12}).json()
    assert shown == answer["choices"][0]["message"]["content"] and shown
