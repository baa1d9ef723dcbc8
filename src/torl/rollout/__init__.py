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
    ChatToolFormat,
    TIRFormat,
    ToRLFormat,
    XMLFormat,
    get_format,
    torl_observation,
)
from torl.rollout.prompts import (
    PYTHON_TOOL_SCHEMA,
    TORL_PROMPT_TEMPLATE,
    XML_PROMPT_TEMPLATE,
    torl_prompt,
    xml_prompt,
)

__all__ = [
    "BUDGET_SPENT_MESSAGE",
    "EMPTY_OUTPUT_MESSAGE",
    "PYTHON_TOOL_SCHEMA",
    "TORL_PROMPT_TEMPLATE",
    "XML_PROMPT_TEMPLATE",
    "ChatToolFormat",
    "GenerationBackend",
    "GenerationOutput",
    "GenerationRequest",
    "HTTPBackend",
    "TIRFormat",
    "TIRRollout",
    "ToRLFormat",
    "Sampling",
    "TransformersBackend",
    "VLLMAsyncBackend",
    "VLLMSyncBackend",
    "XMLFormat",
    "get_format",
    "torl_observation",
    "torl_prompt",
    "xml_prompt",
]
