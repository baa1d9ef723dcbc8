"""A shortened nano run, end to end, with the real parts: pretraining, the vLLM (CPU) engine, the local
sandbox, the ToRL reward and TIRGRPOTrainer; then the before/after table, results and the HTML report."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import cache_dir
from torl.nano.pretrain import PretrainConfig
from torl.nano.run import NanoConfig, run, train_eval_split

# A short pretraining (cached in the test cache): enough for the answer format and some tool use.
SHORT = PretrainConfig(num_examples=4000, steps=300)


def test_held_out_problems_are_not_trained_on():
    cfg = NanoConfig(train_problems=500, eval_problems=100)
    train, held = train_eval_split(cfg)
    assert len(train) == 500 and len(held) == 100
    assert not {p.text for p in held} & {p.text for p in train}
    assert sum(p.size == "large" for p in held) == 50
    assert sum(p.size == "large" for p in train) == 350


@pytest.mark.parametrize("kw", [{"steps": 0}, {"num_generations": 1}, {"eval_samples": -1}, {"max_staleness": -1}])
def test_bad_config_is_refused(kw):
    with pytest.raises(ValueError, match="NanoConfig"):
        NanoConfig(**kw)


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_shortened_run(tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    from torl.core import load_jsonl

    lines: list[str] = []
    cfg = NanoConfig(
        output_dir=str(tmp_path / "run"),
        cache_dir=str(cache_dir() / "nano"),
        pretrain=SHORT,
        steps=3,
        prompts_per_step=8,
        num_generations=8,
        train_problems=200,
        # The short pretraining gets few answers right, and none on large numbers: train on small ones so
        # that groups with mixed rewards (a learning signal) are all but certain in 3 steps of 64 samples.
        train_large_share=0.0,
        eval_problems=40,
    )
    results = run(cfg, log=lines.append)
    out = tmp_path / "run"
    text = "\n".join(lines)

    # Progress and the closing table were printed.
    assert "[grpo] step   3/3" in text
    assert "before greedy" in text and "after greedy" in text
    for name in ("before", "after"):
        s = results[name]
        assert s["n"] == 40 and set(s["by_size"]) == {"small", "large"}
        assert 0.0 <= s["accuracy"] <= 1.0 and 0.0 <= s["tool_use"] <= 1.0
    # Even the short pretraining has learned the format: greedy answers are boxed.
    before = load_jsonl(out / "eval_before.jsonl")
    assert len(before) == 40
    assert sum(t.metadata["pred"] is not None for t in before) >= 30

    # Training used the real tool: some samples ran code, and some code ran fine.
    logs = [r for r in json.loads((out / "metrics.json").read_text()) if "tir/frac_with_tool_call" in r]
    assert len(logs) == 3
    assert max(r["tir/frac_with_tool_call"] for r in logs) > 0
    assert min(r["tir/code_error_rate"] for r in logs if r["tir/frac_with_tool_call"] > 0) < 1
    assert list((out / "trainer" / "trajectories").glob("step_*.jsonl"))

    # Some group had a learning signal, RL changed the policy, and the saved model is the trained one.
    advantages = [t.metadata.get("advantage") or 0.0 for f in (out / "trainer" / "trajectories").glob("step_*.jsonl")
                  for t in load_jsonl(f)]
    assert any(a != 0.0 for a in advantages)
    start = load_file(f"{results['model']}/model.safetensors")
    end = load_file(str(out / "model" / "model.safetensors"))
    assert any(not torch.equal(start[k], end[k]) for k in start)

    # Results and the self-contained HTML report.
    saved = json.loads((out / "results.json").read_text())
    assert saved["seeds"] == {"pretrain": 0, "rl": 0, "eval": cfg.eval_seed}
    page = (out / "report.html").read_text()
    assert "torl nano run" in page and "eval_before" in page and "eval_after" in page
    assert "<script src=" not in page and '<link rel="stylesheet"' not in page  # self-contained

    # Provenance checks and the tool-result log reached the training logs; the log answered only cells whose
    # twin (same code, same earlier cells) ran in the same step, with the twin's output.
    for key in ("tir/answer_copied", "tir/answer_derived", "tir/boxed_by_code", "tir/hardcoded_answer",
                "tir/repeated_cells", "tir/echo_calls", "tir/tool_cache_hit_rate"):
        assert all(key in r for r in logs), key
    ran: dict[str, str] = {}  # one cell per trajectory here (max_tool_calls=1): the key is the code
    for f in sorted((out / "trainer" / "trajectories").glob("step_*.jsonl")):
        step = load_jsonl(f)
        calls = [c for t in step for c in t.tool_calls]
        ran.update({c.call.code: c.result.output for c in calls if not c.result.cached})
        assert all("provenance" in t.metadata for t in step if t.finish_reason != "error")  # saved with it
        assert all(ran[c.call.code] == c.result.output for c in calls if c.result.cached)
        logged = next(r["tir/tool_cache_hit_rate"] for r in logs if r["step"] == int(f.stem.split("_")[1]) + 1)
        assert logged == pytest.approx(sum(c.result.cached for c in calls) / len(calls) if calls else 0.0)

    # Counterfactual reliance: every sampled tool-using answer was re-run four ways, and the numbers add up.
    sampled = load_jsonl(out / "eval_before_sampled.jsonl")
    used = [t for t in sampled if t.tool_calls]
    assert len(sampled) == 160 and used
    assert all({r["kind"] for r in t.metadata["counterfactual"]} == {"disabled", "error", "swap", "replay"}
               for t in used)
    relies = [all(r["changed"] for r in t.metadata["counterfactual"] if r["kind"] in ("disabled", "error"))
              for t in used]  # one call each: every run that took the output away changed the answer
    assert results["before_sampled"]["reliance"] == pytest.approx(sum(relies) / len(used))
    assert all(t.metadata["provenance"]["tool_calls"] == 1 for t in used)  # recorded with each sample
    assert set(results["before_sampled"]["by_size"]["small"]) >= {"reliance", "follows_output"}
    data = json.loads(re.search(r'type="application/json">(.*?)</script>', page, re.DOTALL).group(1))
    assert list(data["sources"]) == ["eval_before", "eval_after", "eval_before_sampled", "eval_after_sampled"]
    charts = {c["key"]: c for c in data["compare"]}
    assert charts["accuracy"]["groups"] == ["all", "large", "small"] and "reliance" in charts

    # The saved run rescored offline: a looser scorer can only turn wrong answers right.
    from torl.cli import main

    assert main(["rescore", str(out), "--scorer", "torl-tol", "--no-save", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["label"]: r for r in report["files"]}
    assert rows["trainer/trajectories/step_*.jsonl"]["files"] == 3 and rows["eval_before.jsonl"]["n"] == 40
    assert report["total"]["right_to_wrong"] == 0 and report["total"]["n"] == 40 * 2 + 160 * 2 + 3 * 64
    assert rows["eval_after.jsonl"]["rewards_known"] == 40
