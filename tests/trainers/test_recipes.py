"""The recipes: their hyperparameters match the published setups, they build, and one step runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import load_example
from torl.core import ToolCall, ToolResult

RECIPES = Path(__file__).resolve().parents[2] / "examples" / "recipes"


def tiny_recipe_args(model: str, tmp_path: Path, *extra: str, steps: int = 1) -> list[str]:
    """`--set` overrides that run a recipe for `steps` steps on the tiny model, two problems written to
    `tmp_path/train.jsonl`, output in `tmp_path/run`, on CPU without vLLM."""
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps({"problem": q, "answer": a}) for q, a in
                              [("What is 12 * 34 + 5?", "413"), ("What is 7 * 8?", "56")]) + "\n")
    return [f"model={model}", f"data.train={data}", "tool.sandbox=local", "tool.workers=1",
            f"trainer.output_dir={tmp_path / 'run'}", "trainer.use_vllm=false", "trainer.bf16=false",
            "trainer.use_cpu=true", "trainer.per_device_train_batch_size=4", "trainer.num_generations=2",
            "trainer.gradient_accumulation_steps=1", f"trainer.max_steps={steps}",
            "trainer.max_completion_length=48", "trainer.gradient_checkpointing=false",
            "trainer.save_trajectories_steps=1", *extra]


def _module(name):
    return load_example("recipes", name)


@pytest.fixture(scope="module")
def train():
    return _module("train")


@pytest.fixture(autouse=True)
def _data_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TORL_DATA_DIR", str(tmp_path))


def _config(recipe):
    from torl.trainers import TIRGRPOConfig

    return TIRGRPOConfig(**{**recipe["trainer"], "bf16": False, "use_cpu": True})  # no GPU here


@pytest.mark.parametrize(("name", "model", "steps"), [("torl_1.5b", "Qwen/Qwen2.5-Math-1.5B", 1000),
                                                      ("torl_7b", "Qwen/Qwen2.5-Math-7B", 500)])
def test_torl_recipes_match_the_paper(train, name, model, steps):
    r = train.load_recipe(RECIPES / f"{name}.yaml")
    c = _config(r)
    assert r["model"] == model and c.max_steps == steps
    assert r["data"]["template"] == "torl" and r["data"]["max_prompt_tokens"] == 390  # ToRL: 400 - 10
    assert r["reward"] == {"name": "torl", "execution_penalty": 0.0, "exact": False} and r["tool"]["timeout_s"] == 10
    assert c.tir_format == "torl" and c.max_tool_calls == 1 and c.max_completion_length == 3072
    assert not c.stateful_tool  # SandboxFusion: every cell in a fresh interpreter
    assert c.num_generations == 16 and c.per_device_train_batch_size * 8 * c.gradient_accumulation_steps == 128 * 16
    assert c.steps_per_generation == c.gradient_accumulation_steps and c.num_iterations == 1  # one update a batch
    assert c.learning_rate == 1e-6 and str(c.lr_scheduler_type.value) == "constant" and c.weight_decay == 0.01
    assert c.beta == 0.0 and c.entropy_coef == 0.0 and c.epsilon == 0.2
    # verl: token mean per micro-batch x (micro-batch size / 2048): 1/8 of TRL's "bnpo" loss, clipped at 1.0
    assert c.loss_type == "bnpo" and c.max_grad_norm == 8.0 and not c.vllm_importance_sampling_correction
    assert c.temperature == 1.0 and c.top_p == 1.0 and c.scale_rewards == "group" and c.advantage_mode == "trl"


def test_zero_tir_recipe_matches_areal(train):
    r = train.load_recipe(RECIPES / "zero_tir_1.5b.yaml")
    c = _config(r)
    assert r["model"] == "Qwen/Qwen2.5-1.5B" and r["data"]["template"] == "zero_tir"
    assert r["reward"] == {"name": "math_answer", "answer_format": "answer_tag"} and r["tool"]["timeout_s"] == 5
    assert c.num_generations == 8 and c.learning_rate == 1e-5 and c.weight_decay == 0.01
    assert c.epsilon == 0.4 and c.beta == 0.0 and c.stateful_tool and c.tir_format == "zero_tir"
    # 1 question x 8 trajectories per step (one process), one update per step
    assert c.per_device_train_batch_size * c.gradient_accumulation_steps == 8 and c.steps_per_generation == 1
    # budgets: 128 executed cells, 1,024 tokens a call, 4,000 with the prompt (AReaL stops at + 1,024 >= 4,000)
    assert (c.max_tool_calls, c.max_turn_tokens, c.max_total_tokens) == (128, 1024, 3999)
    assert c.advantage_mode == "zero_tir" and c.loss_type == "dapo" and c.warmup_steps == 570


@pytest.mark.parametrize("name", ["torl_1.5b", "zero_tir_1.5b"])
def test_exact_switches_build(train, name, tir_model_path):
    """One line each turns a recipe into the original's exact rollout and reward."""
    exact = {"torl_1.5b": ["trainer.tir_format=torl_exact", "data.template=torl_exact", "reward.exact=true"],
             "zero_tir_1.5b": ["trainer.tir_format=zero_tir_exact", "data.template=zero_tir_exact",
                               "reward.scorer=zero_tir", "reward.answer_source=response", "reward.on_failure=0.0"]}
    r = train.load_recipe(RECIPES / f"{name}.yaml", exact[name])
    reward = train.build_reward(r["reward"])
    assert reward.scorer == ("torl" if name == "torl_1.5b" else "zero_tir")
    assert _config(r).tir_format.endswith("_exact")


def test_prompt_filter_counts_the_formats_tokens(train, tir_model_path, tmp_path):
    """`max_prompt_tokens` keeps prompts of at most that many tokens, as the format encodes them (ToRL:
    `len(tokenizer.encode(prompt)) <= 400 - 10`)."""
    from transformers import AutoTokenizer

    from torl.rollout import torl_prompt

    tok = AutoTokenizer.from_pretrained(tir_model_path)
    probs = ["What is 1 + 1?", "x" * 40 + " What is 2 + 2?"]
    sizes = [len(tok(torl_prompt(q))["input_ids"]) for q in probs]
    assert sizes[0] < sizes[1]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"problem": q, "answer": "2"}) + "\n" for q in probs))
    kept = train.build_dataset({"train": str(data), "template": "torl", "max_prompt_tokens": sizes[0]}, tok)
    assert kept["problem"] == probs[:1]
    zt = train.build_dataset({"train": str(data), "template": "zero_tir_exact", "max_prompt_tokens": 10_000}, tok)
    assert zt[0]["prompt"][0]["content"].startswith("\nYou are a helpful assistant.")


def test_overrides_and_errors(train, tmp_path, monkeypatch):
    r = train.load_recipe(RECIPES / "torl_1.5b.yaml", ["trainer.max_steps=3", "tool.sandbox=local", "data.x.y=[1]"])
    assert r["trainer"]["max_steps"] == 3 and r["tool"]["sandbox"] == "local" and r["data"]["x"]["y"] == [1]
    assert r["data"]["train"] == str(tmp_path / "train_math.jsonl")
    with pytest.raises(ValueError, match="key=value"):
        train.load_recipe(RECIPES / "torl_1.5b.yaml", ["trainer.max_steps"])
    monkeypatch.delenv("TORL_DATA_DIR")
    with pytest.raises(ValueError, match="TORL_DATA_DIR"):
        train.load_recipe(RECIPES / "torl_1.5b.yaml")


def test_build_tool_makes_the_sandbox_of_the_recipe(train):
    from torl.errors import ConfigError
    from torl.tools import DockerSandbox, LocalSandbox, SandboxFusionSandbox

    assert type(train.build_tool({"timeout_s": 10})) is DockerSandbox  # the default kind
    local = train.build_tool({"sandbox": "local", "timeout_s": 3})
    assert type(local) is LocalSandbox and local.limits.timeout_s == 3
    assert type(train.build_tool({"sandbox": "fusion", "url": "http://h:8080"})) is SandboxFusionSandbox
    with pytest.raises(ConfigError, match=r"tool\.sandbox: unknown sandbox kind 'podman': use one of auto"):
        train.build_tool({"sandbox": "podman"})


def test_zero_tir_format():
    from torl.rollout import ZeroTIRFormat

    fmt = ZeroTIRFormat()
    text = "<think>compute</think>\n```python\nx = 6 * 7\nprint(x)\n```\n"
    assert fmt.parse_calls(text, stopped=True) == [ToolCall(code="x = 6 * 7\nprint(x)\n")]
    assert fmt.parse_calls(text, stopped=False) == []
    assert fmt.parse_calls("<answer>42</answer>", stopped=True) == []
    assert fmt.parse_calls("```output\n1\n```\n", stopped=True) == []
    assert fmt.render(text, [], [ToolResult(output="42\n")]) == "```output\n42\n```\n"
    assert "print()" in fmt.render(text, [], [ToolResult(output="")])
    err = ToolResult.failure("error", "NameError: name 'y' is not defined", output="Traceback...\nNameError: y")
    assert fmt.render(text, [], [err]) == "```output\nTraceback...\nNameError: y\n```\n"
    assert len(fmt.render(text, [], [ToolResult(output="7" * 5000)])) < 2100


@pytest.mark.parametrize("recipe", ["torl_1.5b", "zero_tir_1.5b"])
def test_recipe_runs_one_step_on_the_tiny_model(train, recipe, tir_model_path, tmp_path):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    tiny = tiny_recipe_args(tir_model_path, tmp_path)
    if recipe == "torl_1.5b":  # through the example script
        trainer = train.main(["--config", str(RECIPES / f"{recipe}.yaml"), "--set", *tiny])
        assert trainer.state.global_step == 1
    else:  # through `torl train`
        from torl.cli import main as torl_main

        assert torl_main(["train", str(RECIPES / f"{recipe}.yaml"), "--set", *tiny]) == 0
    assert (tmp_path / "run" / "trajectories" / "step_000000.jsonl").exists()
    assert (tmp_path / "run" / "model.safetensors").exists()
