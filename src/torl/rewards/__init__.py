"""Rewards for tool-integrated RL, on math-verify.

- `extract_answer`, `math_equal`: find the final answer of the model's own text; compare two answers.
- `MathAnswerReward` (1/0), `ToRLReward` (+1/-1, optional execution penalty).
- Building blocks: `FormatReward`, `ToolUseReward`, `ExecutionPenalty`; combine with `WeightedReward`.
- `VerifyPool`: worker processes with a hard per-item time limit; rewards share `default_pool()`.

Every reward is also a TRL `reward_funcs` callable and reports a per-sample breakdown.
"""

from torl.rewards.answer import MathAnswerReward, ToRLReward
from torl.rewards.base import BatchReward, Sample, WeightedReward
from torl.rewards.extract import AnswerFormat, extract_answer, strip_code, strip_tool_output
from torl.rewards.pool import VerifyPool, default_pool
from torl.rewards.shaping import ExecutionPenalty, FormatReward, ToolUseReward
from torl.rewards.verify import Verdict, math_equal

__all__ = [
    "AnswerFormat",
    "BatchReward",
    "ExecutionPenalty",
    "FormatReward",
    "MathAnswerReward",
    "Sample",
    "ToRLReward",
    "ToolUseReward",
    "Verdict",
    "VerifyPool",
    "WeightedReward",
    "default_pool",
    "extract_answer",
    "math_equal",
    "strip_code",
    "strip_tool_output",
]
