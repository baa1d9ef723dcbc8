"""Evaluation with tools: pass@1 over k samples, unbiased pass@k, maj@k and tool-use statistics per
benchmark (AIME24, AIME25, MATH500, OlympiadBench, AMC23, or any JSON Lines / Hugging Face dataset),
resumable, with ToRL-style tables; counterfactual tool reliance (`counterfactual=`, `torl eval
--counterfactual`) and offline rescoring of saved runs (`torl.eval.rescore`, `torl rescore`).

    problems = load_problems("aime24", data_dir="data") + load_problems("math500", data_dir="data")
    result = asyncio.run(evaluate_model("path/to/model", problems, EvalSettings(k=1), output="out.jsonl"))
    print(format_table({"my model": summary_row(result.summary), **TORL_REPORTED}))
"""

from torl.eval.counterfactual import (
    COUNTERFACTUAL_KINDS,
    CounterfactualSettings,
    format_counterfactual,
    relies_on_tool,
    run_counterfactuals,
    summarize_counterfactual,
)
from torl.eval.data import BENCHMARKS, TORL_BENCHMARKS, DataError, Problem, display_name, load_problems
from torl.eval.metrics import majority_vote, pass_at_k, summarize, summarize_benchmark, tool_stats
from torl.eval.rescore import SCORERS, RescoreError, format_rescore, make_scorer, rerender, rescore_run
from torl.eval.runner import (
    EvalError,
    EvalResult,
    EvalSettings,
    ResultsFile,
    default_reward,
    evaluate,
    evaluate_model,
    prompt_for,
    score_trajectories,
    summarize_rescored,
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
    "COUNTERFACTUAL_KINDS",
    "SCORERS",
    "TORL_BENCHMARKS",
    "TORL_REPORTED",
    "TORL_REPORTED_SOURCE",
    "CounterfactualSettings",
    "DataError",
    "EvalError",
    "EvalResult",
    "EvalSettings",
    "Problem",
    "RescoreError",
    "ResultsFile",
    "default_reward",
    "display_name",
    "evaluate",
    "evaluate_model",
    "format_counterfactual",
    "format_details",
    "format_rescore",
    "format_table",
    "load_problems",
    "majority_vote",
    "make_scorer",
    "pass_at_k",
    "problem_sets",
    "prompt_for",
    "relies_on_tool",
    "rerender",
    "rescore_run",
    "row_source",
    "run_counterfactuals",
    "score_trajectories",
    "summarize",
    "summarize_benchmark",
    "summarize_counterfactual",
    "summarize_rescored",
    "summary_row",
    "tool_stats",
]
