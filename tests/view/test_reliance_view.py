"""The report's new parts: one header line per run, before/after bars per group, provenance and reliance
filters, counterfactual runs in a card, and the "other metric" picker opening on a metric that moves.
Inputs: real trajectories of the tiny TIR model (counterfactual runs, the local sandbox) beside made-up
ones."""

from __future__ import annotations

import json
import re

import pytest
from fakes import make_trajectory, solution

from torl.core import save_jsonl
from torl.view import build_report, write_report
from torl.view.report import moving_metric


def page_data(page: str) -> dict:
    m = re.search(r'<script id="torl-data" type="application/json">(.*?)</script>', page, re.DOTALL)
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def runs(tir_model_path, tmp_path_factory):
    """`after.jsonl`: the TIR model on its problem (2 cells, relies on the tool), marked large, plus two small
    hand solutions; `before.jsonl`: made-up trajectories, one hard-coding its answer."""
    import asyncio

    from torl.eval import CounterfactualSettings, EvalSettings, Problem, evaluate
    from torl.rollout import TIRRollout
    from torl.tools import LocalSandbox

    folder = tmp_path_factory.mktemp("runs")

    async def go():
        async with LocalSandbox(timeout_s=5, workers=1, preload=()) as tool:
            eng = TIRRollout.from_transformers(tir_model_path, tool=tool, max_tool_calls=2, max_new_tokens=96)
            r = await evaluate(
                eng,
                [Problem("nano", "q1", "What is 12 * 34 + 5?", "413")],
                EvalSettings(k=1, max_new_tokens=96, max_tool_calls=2),
                progress=False,
                counterfactual=CounterfactualSettings(kinds=("disabled", "replay")),
            )
            await eng.close()
            return r.trajectories

    real = asyncio.run(go())
    real[0].metadata["size"] = "large"
    hand = [solution("7", cells=0), solution("9", cells=0)]
    for t in hand:
        t.metadata.update(size="small", answer="7")
        t.reward_breakdown["correct"] = float(t.model_text.endswith("{7}."))
    save_jsonl(real + hand, folder / "after.jsonl")
    hard = make_trajectory(
        [
            ("model", "```python\nprint(413)\n```\n```output"),
            ("tool", "\n413\n```\n"),
            ("model", "So \\boxed{413}."),
        ]
    )
    hard.tool_calls[0].call.code = "print(413)\n"
    hard.metadata.update(size="large", answer="413", pred="413")
    hard.reward_breakdown["correct"] = 1.0
    wrong = solution("8", cells=0)
    wrong.metadata.update(size="small", answer="7", pred="8")
    wrong.reward_breakdown["correct"] = 0.0
    save_jsonl([hard, wrong], folder / "before.jsonl")
    return folder


def test_sources_groups_and_bars(runs):
    data = page_data(build_report([runs / "before.jsonl", runs / "after.jsonl"]))
    before, after = data["sources"]["before"], data["sources"]["after"]
    assert (before["all"]["n"], after["all"]["n"]) == (2, 3)
    assert after["all"]["accuracy"] == pytest.approx(2 / 3) and after["groups"]["large"]["reliance"] == 1.0
    assert before["all"]["reliance"] is None and after["groups"]["small"]["tool_use"] == 0.0
    charts = {c["key"]: c for c in data["compare"]}
    assert list(charts) == ["accuracy", "tool_use", "reliance", "changed_by_chance"]  # no swap: no follows_output
    assert charts["changed_by_chance"]["bars"]["after"] == [0.0, 0.0, None]  # greedy replay: same answer
    assert charts["accuracy"]["groups"] == ["all", "large", "small"]
    assert charts["accuracy"]["bars"] == {
        "before": [0.5, 1.0, 0.0],
        "after": [pytest.approx(2 / 3), 1.0, 0.5],
    }
    assert charts["reliance"]["bars"]["before"] == [None, None, None]
    real = next(t for t in data["trajectories"] if t["source"] == "after" and t["calls"])
    assert real["relies"] is True and real["prov"]["copied"] is True and real["group"] == "large"
    assert [(r["kind"], r["call"]) for r in real["cf"]] == [
        ("disabled", 0),
        ("replay", 0),
        ("disabled", 1),
        ("replay", 1),
    ]
    hard = next(t for t in data["trajectories"] if t["source"] == "before" and t["calls"])
    assert hard["prov"]["hardcoded"] is True and hard["relies"] is None
    # one source: no bars
    assert page_data(build_report([runs / "after.jsonl"]))["compare"] == []


def test_the_picker_opens_on_a_metric_that_moves():
    flat = [[s, 0.0] for s in range(5)]
    metrics = {
        "clip_ratio/high_max": flat,
        "clip_ratio/low_mean": flat,
        "learning_rate": [[s, 1e-4 * s] for s in range(5)],
        "loss": [[s, v] for s, v in enumerate([0.02, -0.03, 0.01, -0.02, 0.03])],  # noise around 0
        "entropy": [[s, v] for s, v in enumerate([0.70, 0.64, 0.71, 0.63, 0.69])],  # noise around a level
        "tir/answer_copied": [[s, 0.2 * s] for s in range(5)],  # a trend
        "reward": [[s, s] for s in range(5)],
        "rewards/torl/mean": [[s, s] for s in range(5)],  # the charted reward under another name
    }
    assert moving_metric(metrics, shown=["reward"]) == "tir/answer_copied"
    del metrics["tir/answer_copied"]
    assert moving_metric(metrics, shown=["reward"]) in ("loss", "entropy")
    assert moving_metric({"a": flat}) is None


@pytest.mark.browser
def test_the_page(runs, tmp_path):
    from chromium import chromium_path
    from playwright.sync_api import sync_playwright

    steps = range(1, 6)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(
        json.dumps(
            [
                {
                    "step": s,
                    "clip_ratio/high_max": 0.0,
                    "entropy": 0.7 + 0.05 * (-1) ** s,
                    "tir/answer_copied": 0.1 * s,  # charted: "Answer copied from a tool output"
                    "reward_std": 0.5 - 0.05 * s,
                }
                for s in steps
            ]
        )
    )
    report = write_report(tmp_path / "r.html", [runs / "before.jsonl", runs / "after.jsonl"], metrics)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = b.new_page(viewport={"width": 1200, "height": 900})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(report.as_uri())
        lines = page.locator("#summary .source-line").all_inner_texts()
        assert len(lines) == 2 and lines[0].startswith("before: 2 trajectories")
        assert "accuracy 66.7%" in lines[1] and "relies on the tool 100.0% (of 1 tested)" in lines[1]
        assert page.locator("#compare-section").is_visible()
        titles = page.locator("#compare .chart h3").all_inner_texts()
        assert titles[:2] == ["Accuracy", "Tool use"] and titles[2].startswith("Reliance")
        acc = page.locator("#compare .chart").first
        assert acc.locator("rect.bar").count() == 6 and acc.locator(".tick.group").all_text_contents() == [
            "all",
            "large",
            "small",
        ]
        assert (
            page.locator("#compare .chart").nth(2).locator("text.na").count() == 4
        )  # before, and after on small: not measured
        assert page.locator("#metric-select").input_value() == "reward_std"
        assert "Answer copied from a tool output" in page.locator("#charts .chart h3").all_inner_texts()
        page.select_option("#f-prov", "hardcoded")
        cards = page.locator("details.traj")
        assert cards.count() == 1 and "hard-coded answer" in cards.first.inner_text()
        page.select_option("#f-prov", "")
        page.select_option("#f-rely", "relies")
        cards = page.locator("details.traj")
        assert cards.count() == 1 and "relies on the tool" in cards.first.inner_text()
        assert cards.first.get_attribute("open") is not None  # the first card of a list opens by itself
        rows = cards.first.locator("table.cf tr")
        assert rows.count() == 5 and "tool disabled" in rows.nth(1).inner_text()
        assert cards.first.locator("table.cf tr.changed").count() == 2  # disabled at both calls
        page.screenshot(path=str(tmp_path / "reliance.png"), full_page=True)
        b.close()
    assert problems == []
