"""torl: tool-integrated reinforcement learning for language models.

`import torl` is light: it loads only the core types. Heavy parts (vLLM, torch, docker) load
when their sub-package is imported (`torl.rollout`, `torl.trainers`, `torl.tools`...).
"""

from torl.core import (
    FinishReason,
    Prompt,
    Reward,
    RewardOutput,
    RolloutPolicy,
    Segment,
    Tool,
    ToolCall,
    ToolCallRecord,
    ToolResult,
    ToolStatus,
    Trajectory,
    load_jsonl,
    save_jsonl,
)
from torl.errors import TorlError, UserError

__version__ = "0.1.0"

__all__ = [
    "FinishReason",
    "Prompt",
    "Reward",
    "RewardOutput",
    "RolloutPolicy",
    "Segment",
    "Tool",
    "ToolCall",
    "ToolCallRecord",
    "ToolResult",
    "ToolStatus",
    "TorlError",
    "Trajectory",
    "UserError",
    "__version__",
    "load_jsonl",
    "save_jsonl",
]
