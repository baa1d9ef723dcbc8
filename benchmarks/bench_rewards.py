"""Reward scoring throughput: a 1,024-trajectory GRPO batch (64 problems x 16 samples).

Compares, in the same run and on the same fresh batches (alternating which goes first):
- baseline: naive serial scoring in the main thread (last box of the transcript, math-verify parse + verify
  per sample, math-verify's own timeouts), as a typical reward function does;
- torl: `ToRLReward.score_batch` on a `VerifyPool` (exact shortcuts, cache, parallel workers);
- pool only: the same unique (pred, ref) pairs through the pool with shortcuts and cache off, to show
  what the worker processes alone give over serial math-verify.

Usage: PYTHONPATH=src python benchmarks/bench_rewards.py [--workers 2] [--batches 4] [--problems 64]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from torl.core import Segment, ToolCall, ToolCallRecord, ToolResult, Trajectory
from torl.rewards import ToRLReward, VerifyPool

DATA = Path(os.environ.get("TORL_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
if not (DATA / "math500.jsonl").exists():
    DATA = Path("/work/shared/data")


def load(n_problems: int, rng: random.Random) -> list[str]:
    answers = []
    for name in ("math500", "olympiadbench", "gsm8k_test"):
        with (DATA / f"{name}.jsonl").open(encoding="utf-8") as f:
            answers += [json.loads(line)["answer"] for line in f]
    return rng.sample(answers, n_problems)


def variant(ref: str, rng: random.Random) -> str:
    """A plausible boxed answer: the reference as written, an equivalent form, or a wrong one."""
    kind = rng.random()
    if kind < 0.35:
        return ref
    if kind < 0.6:
        if re.fullmatch(r"-?\d+", ref):
            return rng.choice([f"{ref}.0", f"x = {ref}", f"{ref}\\text{{ units}}"])
        if m := re.fullmatch(r"\\frac\{(\d+)\}\{(\d+)\}", ref):
            return rng.choice([f"{m[1]}/{m[2]}", str(float(Fraction(int(m[1]), int(m[2]))))])
        return ref.replace("\\frac", "\\dfrac").replace(",", ", ")
    if re.fullmatch(r"-?\d+", ref):
        return str(int(ref) + rng.randint(1, 9))
    return ref + "+1" if "," not in ref else ref[::-1]


def trajectory(ref: str, rng: random.Random) -> Trajectory:
    ans = variant(ref, rng)
    failed = rng.random() < 0.2
    out = "NameError: name 'x' is not defined" if failed else f"\\boxed{{{ans}}}"
    parts = [
        (
            "model",
            "Let me think step by step about the problem.\n" * 8 + "```python\nprint(x)\n```\n```output",
        ),
        ("tool", f"\n{out}\n```\n"),
    ]
    if rng.random() < 0.9:  # 10% never box an answer of their own
        parts.append(("model", f"So the final answer is $\\boxed{{{ans}}}$."))
    segs = [Segment(kind=k, text=t, start=0, end=0) for k, t in parts]  # type: ignore[arg-type]
    call = ToolCallRecord(
        call=ToolCall(code="print(x)"), result=ToolResult(status="error" if failed else "ok"), turn=0
    )
    return Trajectory(prompt_ids=[0], segments=segs, tool_calls=[call])


def naive_last_box(text: str) -> str | None:
    i = text.rfind("\\boxed{")
    if i < 0:
        return None
    depth, j = 0, i + len("\\boxed")
    for k in range(j, len(text)):
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        if depth == 0:
            return text[j + 1 : k]
    return None


def naive_serial(trajs: list[Trajectory], refs: list[str]) -> list[float]:
    from math_verify import parse, verify

    scores = []
    for t, ref in zip(trajs, refs, strict=True):
        pred = naive_last_box(t.completion_text)
        ok = pred is not None and verify(parse(f"\\boxed{{{ref}}}"), parse(f"\\boxed{{{pred}}}"))
        scores.append(1.0 if ok else -1.0)
    return scores


def make_batch(args: argparse.Namespace, seed: int) -> tuple[list[Trajectory], list[str]]:
    rng = random.Random(seed)
    problems = load(args.problems, rng)
    refs = [r for r in problems for _ in range(args.samples)]
    return [trajectory(r, rng) for r in refs], refs


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of processes (Linux /proc; 0 elsewhere)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--batches", type=int, default=4, help="fresh batches (new problems) scored in turn")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    n = args.problems * args.samples
    print(
        f"{args.batches} batches of {n} trajectories ({args.problems} problems x {args.samples}), "
        f"{args.workers} workers, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    t0 = time.perf_counter()
    pool = VerifyPool(workers=args.workers).start()
    print(f"pool start: {time.perf_counter() - t0:.2f} s (once per run, not counted)")
    reward = ToRLReward(pool=pool)
    ratios = []
    for b in range(args.batches):
        trajs, refs = make_batch(args, args.seed + b)
        runs, cpu = {}, {}
        order = ("naive", "torl") if b % 2 == 0 else ("torl", "naive")  # alternate: the load drifts
        for name in order:
            pids = pool.worker_pids
            c0, w0, t0 = time.process_time(), _cpu_s(pids), time.perf_counter()
            if name == "naive":
                base = naive_serial(trajs, refs)
            else:
                outs = reward.score_batch(trajs, refs)
            runs[name] = time.perf_counter() - t0
            cpu[name] = time.process_time() - c0 + _cpu_s(pids) - w0
        ratios.append(runs["naive"] / runs["torl"])
        print(
            f"batch {b + 1}: naive serial {runs['naive']:5.2f} s {n / runs['naive']:6.0f} traj/s | "
            f"torl {runs['torl']:5.2f} s {n / runs['torl']:6.0f} traj/s | {ratios[-1]:.2f}x | "
            f"CPU s naive {cpu['naive']:.2f}, torl {cpu['torl']:.2f} (with workers) | "
            f"correct: torl {sum((o.score or 0) > 0 for o in outs)}, naive {sum(s > 0 for s in base)}"
        )
    print(f"median speed-up over naive serial: {statistics.median(ratios):.2f}x; pool stats {pool.stats}")
    print("(naive counts more correct: it also takes boxes printed by the code, in tool output)")
    pool.close()

    # The worker processes alone: math-verify on every unique pair of a new batch, no shortcut, no cache.
    # Serial runs in a fresh interpreter warmed like a worker, so neither side has these pairs cached.
    trajs, refs = make_batch(args, args.seed + args.batches)
    pairs = sorted({(p, r) for t, r in zip(trajs, refs, strict=True) if (p := naive_last_box(t.model_text))})
    with VerifyPool(workers=args.workers, cache_size=0) as raw:
        raw.start()
        t0 = time.perf_counter()
        pool_v = [v.correct for v in raw.verify_many(pairs, quick=False)]
        t_pool = time.perf_counter() - t0
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(pairs, f)
    try:
        out = subprocess.run(
            [sys.executable, "-c", _SERIAL, f.name], capture_output=True, text=True, check=True
        )
    finally:
        os.unlink(f.name)
    t_serial, serial_v = json.loads(out.stdout.strip().splitlines()[-1])
    assert pool_v == serial_v
    print(
        f"{len(pairs)} unique pairs, math-verify on each, no cache: serial {t_serial:.2f} s, "
        f"pool {t_pool:.2f} s ({t_serial / t_pool:.2f}x)"
    )


_SERIAL = """
import json, sys, time
from torl.rewards._worker import _WARMUP
from torl.rewards.verify import check_pair
for p, r in _WARMUP:
    check_pair(p, r, None, quick=False)
pairs = json.load(open(sys.argv[1]))
t0 = time.perf_counter()
got = [check_pair(p, r, 5.0, quick=False).correct for p, r in pairs]
print(json.dumps([time.perf_counter() - t0, got]))
"""


if __name__ == "__main__":
    main()
