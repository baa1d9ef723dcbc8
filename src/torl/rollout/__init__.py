"""Multi-turn tool-integrated rollouts: `TIRRollout`, the TIR formats and the generation backends.

```python
from torl.rollout import TIRRollout, torl_prompt
engine = TIRRollout.from_vllm(model_path, tool=tool, tir_format="torl", max_tool_calls=2, max_new_tokens=3072)
trajectories = await engine.generate([torl_prompt("What is 2 + 2?")], n=16, temperature=1.0)
await engine.close()
```
Importing this package does not import vLLM or torch; backends import them when built.
"""

from torl.rollout.backends import (
    GenerationBackend,
    GenerationOutput,
    GenerationRequest,
    HTTPBackend,
    Sampling,
    TransformersBackend,
    VLLMAsyncBackend,
    VLLMSyncBackend,
)
from torl.rollout.engine import TIRRollout
from torl.rollout.formats import (
    BUDGET_SPENT_MESSAGE,
    EMPTY_OUTPUT_MESSAGE,
    FORMATS,
    PYTHON_TOOL_SCHEMA,
    TORL_PROMPT_TEMPLATE,
    XML_PROMPT_TEMPLATE,
    ZERO_TIR_SYSTEM_PROMPT,
    ChatToolFormat,
    TIRFormat,
    ToRLFormat,
    XMLFormat,
    ZeroTIRFormat,
    get_format,
    register_format,
    torl_observation,
    torl_prompt,
    xml_prompt,
    zero_tir_messages,
)
from torl.rollout.versioned import InflightPolicy, SyncStats, VersionedBackend
from torl.rollout.weights import FolderWeightSync, reload_async_llm

__all__ = [
    "BUDGET_SPENT_MESSAGE",
    "EMPTY_OUTPUT_MESSAGE",
    "FORMATS",
    "PYTHON_TOOL_SCHEMA",
    "TORL_PROMPT_TEMPLATE",
    "XML_PROMPT_TEMPLATE",
    "ZERO_TIR_SYSTEM_PROMPT",
    "ChatToolFormat",
    "FolderWeightSync",
    "GenerationBackend",
    "GenerationOutput",
    "GenerationRequest",
    "HTTPBackend",
    "InflightPolicy",
    "Sampling",
    "SyncStats",
    "TIRFormat",
    "TIRRollout",
    "ToRLFormat",
    "TransformersBackend",
    "VLLMAsyncBackend",
    "VLLMSyncBackend",
    "VersionedBackend",
    "XMLFormat",
    "ZeroTIRFormat",
    "get_format",
    "register_format",
    "reload_async_llm",
    "torl_observation",
    "torl_prompt",
    "xml_prompt",
    "zero_tir_messages",
]
