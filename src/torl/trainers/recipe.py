"""Run a training recipe (YAML): `torl train RECIPE.yaml` or `python examples/recipes/train.py --config RECIPE.yaml`.

A recipe has `model`, `data` (`train` file, `template`: a format name, e.g. torl | zero_tir, `max_prompt_tokens`, `limit`),
`tool` (`sandbox`: docker | local | auto | fusion, and the sandbox's arguments), `reward` (`name`: torl |
math_answer, and the reward's arguments) and `trainer` (`TIRGRPOConfig` fields; with `max_staleness`, the
`AsyncTIRGRPOConfig` of asynchronous training). `${VAR}` is read from the
environment. Override any key with `--set trainer.max_steps=10 tool.sandbox=local`; resume with
`--resume [CHECKPOINT]` (no path: the latest checkpoint in output_dir). Launch on several GPUs with
`accelerate launch`. A bad recipe raises `torl.errors.ConfigError`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from torl.errors import ConfigError, UserError

__all__ = ["build_trainer", "load_recipe", "main"]


def load_recipe(path: str | Path, overrides: list[str] = ()) -> dict[str, Any]:
    """The recipe as a dict, with environment variables expanded and `key.sub=value` overrides applied.

    Raises:
        ConfigError: the file is not a recipe (not YAML, a required section missing) or an override is bad.
    """
    text = os.path.expandvars(Path(path).read_text())
    try:
        recipe = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML ({problem or ' '.join(str(e).split())})") from None
    if not isinstance(recipe, dict):
        raise ConfigError(f"{path}: a recipe is a YAML mapping (model, data, tool, reward, trainer)")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set wants key=value, got {item!r}")
        node = recipe
        *parents, leaf = key.split(".")
        for i, k in enumerate(parents):
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item}: {'.'.join(parents[: i + 1])} is not a section")
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", e)
            raise ConfigError(f"--set {item}: the value is not valid YAML ({problem})") from None
    for section in ("model", "data", "trainer"):
        if section not in recipe:
            raise ConfigError(f"{path}: the recipe has no {section!r}")
    for section in ("data", "trainer", "tool", "reward"):
        if recipe.get(section, "") is None:  # an empty section: its defaults
            recipe[section] = {}
        if not isinstance(recipe.get(section, {}), dict):
            raise ConfigError(f"{path}: {section!r} must be a section of keys, got {recipe[section]!r}")
    if "train" not in recipe["data"]:
        raise ConfigError(f"{path}: the recipe has no data.train (the training JSON Lines file)")
    if "$" in str(recipe["data"].get("train", "")):
        raise ConfigError(f"data.train has an unset variable: {recipe['data']['train']} (set TORL_DATA_DIR)")
    return recipe


def build_dataset(data: dict[str, Any], tokenizer: Any):
    """Read the problems (JSON Lines, or a verl `.parquet` such as ToRL's), apply the prompt template (the
    format's `encode_prompt` counts the tokens), drop prompts over `max_prompt_tokens`."""
    from torl.data import apply_format_template, load_jsonl_dataset, load_verl_parquet
    from torl.rollout.formats import FORMATS, get_format

    load = load_verl_parquet if str(data["train"]).endswith(".parquet") else load_jsonl_dataset
    ds = load(data["train"], limit=data.get("limit"))
    template = data.get("template", "torl")
    if template not in FORMATS:
        raise ConfigError(f"unknown data.template {template!r} (a format name: {', '.join(sorted(FORMATS))})")
    ds = apply_format_template(ds, template)
    limit = data.get("max_prompt_tokens")
    if limit:
        fmt = get_format(template)
        ds = ds.filter(lambda row: len(fmt.encode_prompt(row["prompt"], tokenizer)) <= limit)
    return ds


def build_tool(tool: dict[str, Any]):
    """The recipe's sandbox, which is the Python tool: `sandbox` is its kind (`docker` by default, `local`,
    `auto`, or `fusion` with a `url`; see `torl.tools.make_sandbox`), other keys go to the sandbox."""
    from torl.tools import make_sandbox

    kw = dict(tool)
    kind = kw.pop("sandbox", "docker")
    try:
        return make_sandbox(kind, **kw)
    except ConfigError as e:
        raise ConfigError(f"tool.sandbox: {e}") from None


def build_reward(reward: dict[str, Any]):
    """The recipe's reward (`torl` or `math_answer`; other keys go to its constructor)."""
    from torl.rewards import MathAnswerReward, ToRLReward

    kw = dict(reward)
    name = kw.pop("name", "torl")
    if name == "torl":
        return ToRLReward(**kw)
    if name == "math_answer":
        return MathAnswerReward(**kw)
    raise ConfigError(f"unknown reward.name {name!r} (torl, math_answer)")


def build_trainer(recipe: dict[str, Any]):
    """The trainer a recipe describes (model, data, tool, reward, `TIRGRPOConfig`): a `TIRGRPOTrainer`, or an
    `AsyncTIRGRPOTrainer` when the trainer section sets `max_staleness`."""
    from transformers import AutoTokenizer

    from torl.trainers import AsyncTIRGRPOConfig, AsyncTIRGRPOTrainer, TIRGRPOConfig, TIRGRPOTrainer

    asynchronous = "max_staleness" in recipe["trainer"]  # AReaL's ZERO-TIR runs ahead (max_head_offpolicyness)
    config_cls, trainer_cls = (AsyncTIRGRPOConfig, AsyncTIRGRPOTrainer) if asynchronous else (TIRGRPOConfig,
                                                                                            TIRGRPOTrainer)
    args = _built("trainer", lambda: config_cls(**recipe["trainer"]))
    tokenizer = AutoTokenizer.from_pretrained(recipe["model"])
    ds = _built("data", lambda: build_dataset(recipe["data"], tokenizer))
    tool = _built("tool", lambda: build_tool(recipe.get("tool", {})))
    reward = _built("reward", lambda: build_reward(recipe.get("reward", {})))
    return trainer_cls(
        model=recipe["model"], processing_class=tokenizer, args=args, train_dataset=ds,
        tool=tool, reward_funcs=[reward],
    )


def _built(section: str, build: Callable[[], Any]) -> Any:
    """`build()`; a bad value or keyword in the recipe's `section` becomes a `ConfigError` naming it."""
    try:
        return build()
    except UserError:
        raise
    except (TypeError, ValueError) as e:  # unknown keyword, bad value, unknown name
        raise ConfigError(f"{section}: {e}") from e


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
