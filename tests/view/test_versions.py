"""Asynchronous training: `torl view` shows the policy version of each model turn, and the range in the
trajectory's header."""

from __future__ import annotations

import pytest
from chromium import chromium_path

from torl.core import Segment, Trajectory, save_jsonl
from torl.view import write_report
from torl.view.report import trajectory_record

pytestmark = pytest.mark.browser


def _trajectory() -> Trajectory:
    texts = [("model", "```python\nprint(1)\n```\n```output", 2), ("tool", "\n1\n```\n", None),
             ("model", "So \\boxed{1}.", 3)]
    segs, n = [], 0
    for kind, text, version in texts:
        segs.append(Segment(kind=kind, text=text, start=n, end=n + 2, version=version))
        n += 2
    return Trajectory(prompt="What is 1?", prompt_ids=[1], completion_ids=[5] * n, logprobs=[0.0] * n,
                      env_mask=[1, 1, 0, 0, 1, 1], segments=segs, metadata={"step": 3})


def test_segment_versions_in_the_record_and_the_page(tmp_path):
    t = _trajectory()
    assert [p.get("version") for p in trajectory_record(t, "train", 0)["parts"]] == [2, None, 3]
    save_jsonl([t], tmp_path / "trajectories" / "step_000003.jsonl")
    report = write_report(tmp_path / "r.html", [tmp_path / "trajectories" / "step_000003.jsonl"])
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = b.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri())
        card = page.locator("details.traj").first
        assert "policy v2\u2013v3" in card.locator("summary").first.inner_text()
        if card.get_attribute("open") is None:
            card.locator("summary").first.click()
        assert card.locator("div.version").all_inner_texts() == ["policy v2", "policy v3"]
        b.close()
    assert not errors
