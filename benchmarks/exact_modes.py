"""What each difference between torl's defaults and the originals' exact modes is worth.

1. Scorers on the benchmark references: each reference, boxed (or in `<answer>` tags) as a model would
   write it, against itself, against forms torl's rules accept, and against wrong forms; how many verdicts
   ToRL's check (`ToRLReward(exact=True)`) and ZERO-TIR's (`scorer="zero_tir"`) flip.
2. Rollout switches, paired greedy rollouts (same prompts, same model, only the switch changed) on a
   model's problems: `torl` vs `torl_exact` (observation and code rules), stateful vs stateless cells at
   C = 2; how many trajectories change text or reward. Plus, on the default run: how many tool outputs
   ToRL's observation rules would show differently, how many turns its code rules would decide
   differently, and how many rewards ToRL's check flips.
3. The nano run's outputs (its eval_*.jsonl): rewards flipped by ToRL's check.

    PYTHONPATH=src python benchmarks/exact_modes.py --data-dir ../shared/data --tir-model MODEL \\
        [--nano-run NANO_OUT] [--limit 50] [--out exact_modes.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from torl.core import Trajectory, load_jsonl
from torl.rewards import MathAnswerReward, ToRLReward, VerifyPool
from torl.rollout import get_format

SAVE = os.environ.get("EXACT_MODES_SAVE")  # a folder: keep every run's trajectories (JSON Lines)
BENCHES = ["aime24", "aime25", "amc23", "math500", "olympiadbench", "gsm8k_test"]
_INT, _DEC = re.compile(r"-?\d+"), re.compile(r"-?\d+\.\d+")
_FRAC = re.compile(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}")


def equivalent(a: str) -> list[str]:
    """Forms of the reference `a` that torl's rules accept (what a model may well write instead)."""
    if _INT.fullmatch(a):
        n = int(a)
        return [f"{n}.0", f"x = {n}", f"{n}\\text{{ units}}"] + ([f"{n:,}"] if abs(n) >= 1000 else [])
    if _DEC.fullmatch(a):
        f = Fraction(a)
        return [f"\\frac{{{f.numerator}}}{{{f.denominator}}}", a + "0"]
    if m := _FRAC.fullmatch(a):
        sign, p, q = m.groups()
        f = Fraction(int(p), int(q)) * (-1 if sign else 1)
        return [f"{f.numerator}/{f.denominator}", f"\\dfrac{{{f.numerator}}}{{{f.denominator}}}"]
    return [f"{a.replace(',', ', ')}", a.replace("\\frac", "\\dfrac"), f"$ {a} $"]


def wrong(a: str, other: str) -> str:
    if _INT.fullmatch(a):
        return str(int(a) + 1)
    if m := _FRAC.fullmatch(a):
        sign, p, q = m.groups()
        return f"{sign}\\frac{{{int(p) + 1}}}{{{q}}}"
    return other


def scorer_flips(data_dir: Path, pool: VerifyPool) -> dict[str, Any]:
    boxed = {"default": ToRLReward(pool=pool, tir_format="torl"), "torl": ToRLReward(exact=True, pool=pool)}
    tagged = {"default": MathAnswerReward(answer_format="answer_tag", pool=pool, tir_format="zero_tir"),
              "zero_tir": MathAnswerReward(scorer="zero_tir", answer_source="response", on_failure=0.0, pool=pool)}
    out: dict[str, Any] = {}
    for bench in BENCHES:
        refs = [r["answer"] for _, r in _rows(data_dir / f"{bench}.jsonl")]
        kinds = {"self": [(a, a) for a in refs],
                 "equivalent": [(e, a) for a in refs for e in equivalent(a)],
                 "wrong": [(wrong(a, refs[(i + 1) % len(refs)]), a) for i, a in enumerate(refs)
                           if wrong(a, refs[(i + 1) % len(refs)]) != a]}
        row: dict[str, Any] = {"references": len(refs)}
        for kind, pairs in kinds.items():
            preds, answers = [p for p, _ in pairs], [a for _, a in pairs]
            box = {k: r([""] * len(pairs), [f"So the answer is \\boxed{{{p}}}." for p in preds], answer=answers)
                   for k, r in boxed.items()}
            tag = {k: r([""] * len(pairs), [f"<think>ok</think> <answer>{p}</answer>" for p in preds],
                        answer=answers) for k, r in tagged.items()}
            row[kind] = {
                "pairs": len(pairs),
                "default_accepts": sum(s == 1.0 for s in box["default"]),
                "torl_accepts": sum(s == 1.0 for s in box["torl"]),
                "torl_flips": sum((a == 1.0) != (b == 1.0) for a, b in zip(box["default"], box["torl"])),
                "zero_tir_accepts": sum(s == 1.0 for s in tag["zero_tir"]),
                "zero_tir_flips": sum((a == 1.0) != (b == 1.0) for a, b in zip(tag["default"], tag["zero_tir"])),
            }
        out[bench] = row
        print(f"[scorers] {bench}: {json.dumps(row)}", flush=True)
    return out


def _rows(path: Path):
    from torl.data import read_jsonl

    return list(read_jsonl(path))


def _score(trajs: list[Trajectory], reward: Any) -> list[float | None]:
    return [o.score for o in reward.score_trajectories(trajs)]


def _turns(t: Trajectory, budget: int = 1) -> list[tuple[str, bool]]:
    """(text, stopped on the stop string) of each model turn of a torl-format trajectory made with C = budget."""
    segs, out, calls = t.segments, [], 0
    for i, s in enumerate(segs):
        if s.kind != "model":
            calls += 1
            continue
        followed = i + 1 < len(segs) and segs[i + 1].kind == "tool"
        last_stop = calls < budget and t.finish_reason == "stop" and s.text.rstrip().endswith("```output")
        out.append((s.text, followed or last_stop))
    return out


def static_diffs(trajs: list[Trajectory], pool: VerifyPool) -> dict[str, Any]:
    """On one run's trajectories: tool outputs ToRL's rules show otherwise, turns its code rules decide
    otherwise, rewards its check flips."""
    torl, exact = get_format("torl"), get_format("torl_exact")
    calls = [r for t in trajs for r in t.tool_calls]
    obs_diff = [r for r in calls if torl.observation(r.result) != exact.observation(r.result)]
    traj_obs = sum(any(torl.observation(r.result) != exact.observation(r.result) for r in t.tool_calls) for t in trajs)
    turns = [(x, st) for t in trajs for x, st in _turns(t)]
    turn_diff = sum(torl.turn_calls([x], st) != exact.turn_calls([x], st) for x, st in turns)
    default = _score(trajs, ToRLReward(pool=pool, tir_format="torl"))
    exact_r = _score(trajs, ToRLReward(exact=True, pool=pool))
    return {
        "trajectories": len(trajs),
        "tool_calls": len(calls),
        "observations_differ": len(obs_diff),
        "trajectories_with_a_different_observation": traj_obs,
        "observation_kinds": dict(Counter(exact.observation(r.result)[:40] for r in obs_diff).most_common(5)),
        "model_turns": len(turns),
        "turn_decisions_differ": turn_diff,
        "scorer_flips": sum((a == 1.0) != (b == 1.0) for a, b in zip(default, exact_r)),
        "accuracy_default": sum(s == 1.0 for s in default) / max(len(trajs), 1),
        "accuracy_torl_check": sum(s == 1.0 for s in exact_r) / max(len(trajs), 1),
    }


def paired(a: list[Trajectory], b: list[Trajectory], pool: VerifyPool) -> dict[str, Any]:
    ra = _score(a, ToRLReward(pool=pool, tir_format="torl"))
    rb = _score(b, ToRLReward(pool=pool, tir_format="torl"))
    return {
        "trajectories": len(a),
        "text_differs": sum(x.completion_text != y.completion_text for x, y in zip(a, b)),
        "reward_differs": sum(x != y for x, y in zip(ra, rb)),
        "with_2_calls": sum(x.num_tool_calls >= 2 for x in a),
        "accuracy": [sum(s == 1.0 for s in ra) / len(a), sum(s == 1.0 for s in rb) / len(b)],
    }


async def rollouts(model: str, prompts: list[Any], meta: list[dict], max_len: int, max_new: int,
                   n: int = 1, temperature: float = 0.0) -> dict[str, list]:
    from torl.rollout import TIRRollout
    from torl.tools import LocalSandbox, PythonTool

    runs = {"torl_c1": ("torl", 1, True), "torl_exact_c1": ("torl_exact", 1, True),
            "torl_c2_stateful": ("torl", 2, True), "torl_c2_stateless": ("torl", 2, False)}
    out = {}
    async with PythonTool(LocalSandbox(timeout_s=5, workers=2, preload=())) as tool:
        eng = TIRRollout.from_vllm(model, tool=tool, max_new_tokens=max_new,
                                   engine_kwargs={"max_model_len": max_len, "dtype": "float32", "enforce_eager": True})
        try:
            for name, (fmt, c, stateful) in runs.items():
                t0 = time.time()
                eng.format = get_format(fmt)
                eng.format.bind(eng.tokenizer, [tool])
                eng.max_tool_calls, eng.stateful, eng.max_turns = c, stateful, c + 1
                seed = 1234 if temperature > 0 else None  # paired runs sample alike until the switch matters
                out[name] = await eng.generate(prompts, n=n, temperature=temperature, seed=seed, metadata=meta)
                if SAVE:
                    from torl.core import save_jsonl

                    tag = f"{Path(model).name}_T{temperature:g}_{name}"
                    save_jsonl(out[name], Path(SAVE) / f"{tag}.jsonl")
                print(f"[rollout] {model}: {name} in {time.time() - t0:.0f}s", flush=True)
        finally:
            await eng.close()
    return out


def measure_model(model: str, prompts: list[Any], meta: list[dict], pool: VerifyPool, max_len: int,
                  max_new: int, n: int = 1, temperature: float = 0.0) -> dict[str, Any]:
    runs = asyncio.run(rollouts(model, prompts, meta, max_len, max_new, n, temperature))
    return {
        "default_run": static_diffs(runs["torl_c1"], pool),
        "format_rules": paired(runs["torl_c1"], runs["torl_exact_c1"], pool),
        "state_c2": paired(runs["torl_c2_stateful"], runs["torl_c2_stateless"], pool),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--tir-model", help="a model that writes ToRL-format cells (e.g. the tiny TIR test model)")
    p.add_argument("--nano-run", type=Path, help="a nano run's output folder (model/, eval_*.jsonl)")
    p.add_argument("--limit", type=int, default=50, help="problems of each benchmark for the rollouts")
    p.add_argument("--out", type=Path, default=Path("exact_modes.json"))
    p.add_argument("--no-scorers", action="store_true", help="skip part 1")
    p.add_argument("--nano-model", action="append", default=[], metavar="NAME=PATH",
                   help="more nano models to roll out at T=1 (e.g. the pretrained one before RL)")
    p.add_argument("--samples", type=int, default=2, help="samples a problem in the T=1 nano rollouts")
    a = p.parse_args()
    results: dict[str, Any] = json.loads(a.out.read_text()) if a.out.exists() else {}
    with VerifyPool(workers=2, timeout_s=10.0) as pool:
        if not a.no_scorers:
            results["scorers_on_references"] = scorer_flips(a.data_dir, pool)
            a.out.write_text(json.dumps(results, indent=1))
        if a.nano_run:
            from torl.nano.run import NanoConfig, train_eval_split

            for name in ("eval_before.jsonl", "eval_after.jsonl"):
                f = a.nano_run / name
                if f.exists():
                    results[f"nano_{name}"] = static_diffs(load_jsonl(f), pool)
            _, held = train_eval_split(NanoConfig())
            meta = [{"answer": q.answer, "problem": q.text} for q in held]
            prompts = [q.prompt for q in held]
            if "nano_rollouts" not in results:
                results["nano_rollouts"] = measure_model(str(a.nano_run / "model"), prompts, meta, pool, 256, 96)
            models = [("after", str(a.nano_run / "model"))] + [tuple(x.split("=", 1)) for x in a.nano_model]
            for name, path in models:
                results[f"nano_rollouts_T1_{name}"] = measure_model(path, prompts, meta, pool, 256, 96,
                                                                    n=a.samples, temperature=1.0)
                a.out.write_text(json.dumps(results, indent=1))
        if a.tir_model:
            from torl.rollout import torl_prompt

            rows = [r for b in BENCHES for _, r in _rows(a.data_dir / f"{b}.jsonl")[: a.limit]]
            results["tiny_tir_rollouts"] = measure_model(
                a.tir_model, [torl_prompt(r["problem"]) for r in rows],
                [{"answer": r["answer"], "problem": r["problem"]} for r in rows], pool, 2048, 256)
    a.out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
