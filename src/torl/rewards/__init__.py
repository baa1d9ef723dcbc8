"""Rewards for tool-integrated RL, on math-verify.

- `extract_answer`, `math_equal`: find the final answer of the model's own text; compare two answers.
- `MathAnswerReward` (1/0), `ToRLReward` (+1/-1, optional execution penalty).
- Building blocks: `FormatReward`, `ToolUseReward`, `ExecutionPenalty`; combine with `WeightedReward`.
- Provenance: `check_provenance` (answer copied from tool output, boxes from code, hard-coded answers,
  repeated and echoing cells) and the optional `ProvenancePenalty`.
- `VerifyPool`: worker processes with a hard per-item time limit; rewards share `default_pool()`.

Every reward is also a TRL `reward_funcs` callable and reports a per-sample breakdown.
"""

from torl.rewards.answer import MathAnswerReward, ToRLReward
from torl.rewards.base import BatchReward, Sample, WeightedReward
from torl.rewards.extract import AnswerFormat, extract_answer, strip_code, strip_tool_output
from torl.rewards.pool import VerifyPool, default_pool
from torl.rewards.provenance import (
    Provenance,
    check_provenance,
    check_text,
    provenance_rates,
    record_provenance,
)
from torl.rewards.shaping import ExecutionPenalty, FormatReward, ProvenancePenalty, ToolUseReward
from torl.rewards.verify import Verdict, math_equal

__all__ = [
    "AnswerFormat",
    "BatchReward",
    "ExecutionPenalty",
    "FormatReward",
    "MathAnswerReward",
    "Provenance",
    "ProvenancePenalty",
    "Sample",
    "ToRLReward",
    "ToolUseReward",
    "Verdict",
    "VerifyPool",
    "WeightedReward",
    "check_provenance",
    "check_text",
    "default_pool",
    "extract_answer",
    "math_equal",
    "provenance_rates",
    "record_provenance",
    "strip_code",
    "strip_tool_output",
]
