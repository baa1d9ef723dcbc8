"""Evaluation with tools: pass@1 over k samples, unbiased pass@k, maj@k and tool-use statistics per
benchmark (AIME24, AIME25, MATH500, OlympiadBench, AMC23, or any JSON Lines / Hugging Face dataset),
resumable, with ToRL-style tables.

    problems = load_problems("aime24", data_dir="data") + load_problems("math500", data_dir="data")
    result = asyncio.run(evaluate_model("path/to/model", problems, EvalSettings(k=1), output="out.jsonl"))
    print(format_table({"my model": summary_row(result.summary), **TORL_REPORTED}))
"""

from torl.eval.data import BENCHMARKS, TORL_BENCHMARKS, DataError, Problem, display_name, load_problems
from torl.eval.metrics import majority_vote, pass_at_k, summarize, summarize_benchmark, tool_stats
from torl.eval.runner import (
    EvalError,
    EvalResult,
    EvalSettings,
    ResultsFile,
    default_reward,
    evaluate,
    evaluate_model,
    prompt_for,
    rescore,
    score_trajectories,
)
from torl.eval.table import (
    TORL_REPORTED,
    TORL_REPORTED_SOURCE,
    format_details,
    format_table,
    problem_sets,
    row_source,
    summary_row,
)

__all__ = [
    "BENCHMARKS",
    "TORL_BENCHMARKS",
    "TORL_REPORTED",
    "TORL_REPORTED_SOURCE",
    "DataError",
    "EvalError",
    "EvalResult",
    "EvalSettings",
    "Problem",
    "ResultsFile",
    "default_reward",
    "display_name",
    "evaluate",
    "evaluate_model",
    "format_details",
    "format_table",
    "load_problems",
    "majority_vote",
    "pass_at_k",
    "problem_sets",
    "prompt_for",
    "rescore",
    "row_source",
    "score_trajectories",
    "summarize",
    "summarize_benchmark",
    "summary_row",
    "tool_stats",
]
