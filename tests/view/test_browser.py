"""The report in headless Chromium: no console errors, cells and outputs shown, hostile text inert,
filters, pagination and charts work. Screenshots go to tmp_path (or $TORL_SCREENSHOT_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from chromium import chromium_path
from inputs import HOSTILE, write_eval, write_training_run

from torl.view import write_report

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith("file:") else None
    )
    page.goto(path.as_uri())
    return page, problems


def shot(page, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("TORL_SCREENSHOT_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=False)


def test_eval_report_shows_cells_outputs_and_filters(browser, tmp_path):
    report = write_report(tmp_path / "eval.html", [write_eval(tmp_path)], title="Eval <report>")
    page, problems = open_page(browser, report)
    assert page.title() == "Eval <report>"
    first = page.locator("details.traj").first
    assert first.get_attribute("open") is not None
    assert first.locator("pre.cell").first.inner_text() == "print(12 * 34 + 5)  # the sum"
    assert first.locator("pre.cell .com").inner_text() == "# the sum"  # highlighted
    assert first.locator("pre.output").first.inner_text() == "413"
    assert "\\boxed{413}" in first.inner_text() and "✓ correct" in first.inner_text()
    assert "by integer" in first.locator("summary").first.inner_text()  # the rule that decided
    shot(page, tmp_path, "eval_report.png")
    assert page.locator("details.traj").count() == 50  # first page
    page.click("#more")
    assert page.locator("details.traj").count() == 60
    assert page.locator("#more").is_hidden()

    page.select_option("#f-benchmark", "aime24")
    assert page.locator("details.traj").count() == 2
    page.select_option("#f-correct", "noanswer")
    cards = page.locator("details.traj")
    assert cards.count() == 1 and "hit token limit" in cards.first.inner_text()
    assert cards.first.locator("pre.output.truncated").count() == 1
    page.select_option("#f-benchmark", "")
    page.select_option("#f-correct", "")
    page.select_option("#f-tool", "error")
    cards = page.locator("details.traj")
    assert cards.count() == 1 and "1 code error" in cards.first.inner_text()
    cards.first.locator("summary").first.click()  # open it
    failed = cards.first.locator("pre.output.failed")
    assert failed.count() == 1 and "NameError" in failed.get_attribute("data-label")
    page.select_option("#f-tool", "")
    page.fill("#f-search", "window.__pwned")
    cards = page.locator("details.traj")
    assert cards.count() == 1
    cards.first.locator("summary").first.click()
    assert HOSTILE in cards.first.inner_text()  # shown as text
    assert page.evaluate("window.__pwned") is None and page.locator("#list img, #list b").count() == 0
    page.fill("#f-search", "no such text anywhere")
    assert page.locator("details.traj").count() == 0 and page.locator(".empty").is_visible()
    assert problems == []


def test_training_report_draws_the_curves(browser, tmp_path):
    folder, state = write_training_run(tmp_path)
    report = write_report(tmp_path / "train.html", [folder], state, title="Training run")
    page, problems = open_page(browser, report)
    titles = page.locator(".chart h3").all_inner_texts()
    for t in (
        "Reward",
        "Accuracy",
        "Tool calls per trajectory",
        "Code error rate",
        "Response length (tokens)",
        "Accuracy (eval)",
    ):
        assert t in titles
    acc = page.locator(".chart", has=page.locator("h3", has_text="Accuracy")).first
    # two lines: from the trajectories, and from trainer_state.json
    assert acc.locator("polyline").count() == 2 and acc.locator("circle").count() == 10
    assert "tir/accuracy (trainer_state.json)" in acc.locator(".sub").inner_text()
    page.select_option("#metric-select", "loss")
    assert page.locator("#metric-chart circle").count() == 4  # the NaN step is left out
    assert (
        page.locator("details.traj").count() == 20
        and "step 1" in page.locator("details.traj").first.inner_text()
    )
    shot(page, tmp_path, "training_report.png")
    assert problems == []


def test_two_runs_get_a_run_filter(browser, tmp_path):
    a = write_eval(tmp_path / "a")
    b = write_eval(tmp_path / "b")
    b.rename(b.with_name("other.jsonl"))
    report = write_report(tmp_path / "two.html", [a, b.with_name("other.jsonl")])
    page, problems = open_page(browser, report)
    assert page.locator("#f-source-label").is_visible()
    assert page.locator("#count").inner_text().startswith("120 of 120")
    page.select_option("#f-source", "other")
    assert page.locator("#count").inner_text().startswith("60 of 120")
    assert page.locator("details.traj .badge", has_text="other").count() == 50
    assert problems == []
