"""Tools for tool-integrated RL: `PythonTool` and the sandboxes it runs code in.

```python
from torl.tools import PythonTool, LocalSandbox, DockerSandbox
async with PythonTool(LocalSandbox(timeout_s=5)) as tool:
    r = await tool.execute("print(1 + 1)")
```

Importing this package is light: the docker SDK and httpx are imported only when used.
"""

from __future__ import annotations

from typing import Any

from torl.core import ToolResult
from torl.tools.docker_sandbox import DockerSandbox, docker_available
from torl.tools.local_sandbox import LocalSandbox
from torl.tools.python_tool import PythonTool
from torl.tools.sandbox import DEFAULT_PRELOAD, Limits, Sandbox
from torl.tools.sandbox_fusion import SandboxFusionSandbox

__all__ = [
    "DEFAULT_PRELOAD",
    "DockerSandbox",
    "Limits",
    "LocalSandbox",
    "PythonTool",
    "Sandbox",
    "SandboxFusionSandbox",
    "ToolResult",
    "default_sandbox",
    "docker_available",
]


def default_sandbox(**kwargs: Any) -> Sandbox:
    """A `DockerSandbox` when a Docker engine and the sandbox image are there, else a `LocalSandbox`.

    Keyword arguments (limits, workers, preload) go to the chosen sandbox's constructor.
    """
    if docker_available() is None:
        return DockerSandbox(**kwargs)
    return LocalSandbox(**kwargs)
