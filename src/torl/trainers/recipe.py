"""Run a training recipe (YAML): `torl train RECIPE.yaml` or `python examples/recipes/train.py --config RECIPE.yaml`.

A recipe has `model`, `data` (`train` file, `template`: a format name, e.g. torl | zero_tir, `max_prompt_tokens`, `limit`),
`tool` (`sandbox`: docker | local, and the sandbox's arguments), `reward` (`name`: torl | math_answer, and the
reward's arguments) and `trainer` (`TIRGRPOConfig` fields). `${VAR}` is read from the environment. Override
any key with `--set trainer.max_steps=10 tool.sandbox=local`; resume with `--resume [CHECKPOINT]` (no path:
the latest checkpoint in output_dir). Launch on several GPUs with `accelerate launch`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import yaml

__all__ = ["build_trainer", "load_recipe", "main"]


def load_recipe(path: str | Path, overrides: list[str] = ()) -> dict[str, Any]:
    """The recipe as a dict, with environment variables expanded and `key.sub=value` overrides applied."""
    text = os.path.expandvars(Path(path).read_text())
    recipe = yaml.safe_load(text)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set wants key=value, got {item!r}")
        node = recipe
        *parents, leaf = key.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = yaml.safe_load(value)
    for section in ("model", "data", "trainer"):
        if section not in recipe:
            raise ValueError(f"{path}: the recipe has no {section!r}")
    if "$" in str(recipe["data"].get("train", "")):
        raise ValueError(f"data.train has an unset variable: {recipe['data']['train']} (set TORL_DATA_DIR)")
    return recipe


def build_dataset(data: dict[str, Any], tokenizer: Any):
    """Read the problems, apply the prompt template, drop prompts over `max_prompt_tokens`."""
    from torl.data import apply_format_template, load_jsonl_dataset
    from torl.rollout.formats import FORMATS

    ds = load_jsonl_dataset(data["train"], limit=data.get("limit"))
    template = data.get("template", "torl")
    if template not in FORMATS:
        raise ValueError(f"unknown data.template {template!r} (a format name: {', '.join(sorted(FORMATS))})")
    ds = apply_format_template(ds, template)
    limit = data.get("max_prompt_tokens")
    if limit:
        def n_tokens(prompt):
            if isinstance(prompt, str):
                return len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
            return len(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                     return_dict=False))

        ds = ds.filter(lambda row: n_tokens(row["prompt"]) <= limit)
    return ds


def build_tool(tool: dict[str, Any]):
    """`PythonTool` over the recipe's sandbox (`docker` or `local`; other keys go to the sandbox)."""
    from torl.tools import DockerSandbox, LocalSandbox, PythonTool

    kind = tool.get("sandbox", "docker")
    kw = {k: v for k, v in tool.items() if k != "sandbox"}
    if kind == "docker":
        return PythonTool(DockerSandbox(**kw))
    if kind == "local":
        return PythonTool(LocalSandbox(**kw))
    raise ValueError(f"unknown tool.sandbox {kind!r} (docker, local)")


def build_reward(reward: dict[str, Any]):
    """The recipe's reward (`torl` or `math_answer`; other keys go to its constructor)."""
    from torl.rewards import MathAnswerReward, ToRLReward

    kw = dict(reward)
    name = kw.pop("name", "torl")
    if name == "torl":
        return ToRLReward(**kw)
    if name == "math_answer":
        return MathAnswerReward(**kw)
    raise ValueError(f"unknown reward.name {name!r} (torl, math_answer)")


def build_trainer(recipe: dict[str, Any]):
    """The `TIRGRPOTrainer` a recipe describes (model, data, tool, reward, `TIRGRPOConfig`)."""
    from transformers import AutoTokenizer

    from torl.trainers import TIRGRPOConfig, TIRGRPOTrainer

    args = TIRGRPOConfig(**recipe["trainer"])
    tokenizer = AutoTokenizer.from_pretrained(recipe["model"])
    ds = build_dataset(recipe["data"], tokenizer)
    return TIRGRPOTrainer(
        model=recipe["model"], processing_class=tokenizer, args=args, train_dataset=ds,
        tool=build_tool(recipe.get("tool", {})), reward_funcs=[build_reward(recipe.get("reward", {}))],
    )


def main(argv: list[str] | None = None):
    """Command line: `--config RECIPE.yaml [--set KEY=VALUE ...] [--resume [CHECKPOINT]]`; returns the trainer."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--resume", nargs="?", const=True, default=None, help="checkpoint path (default: latest)")
    a = p.parse_args(argv)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    trainer = build_trainer(load_recipe(a.config, a.set))
    try:
        trainer.train(resume_from_checkpoint=a.resume)
        trainer.save_model()
    finally:
        trainer.close()  # sandbox workers
    return trainer


if __name__ == "__main__":
    main()
