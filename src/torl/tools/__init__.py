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
from torl.errors import ConfigError
from torl.tools.cache import CachedTool, ToolCache, is_cacheable
from torl.tools.docker_sandbox import DockerSandbox, docker_available
from torl.tools.local_sandbox import LocalSandbox
from torl.tools.python_tool import PythonTool
from torl.tools.sandbox import DEFAULT_PRELOAD, Limits, Sandbox
from torl.tools.sandbox_fusion import SandboxFusionSandbox

__all__ = [
    "DEFAULT_PRELOAD",
    "SANDBOX_KINDS",
    "CachedTool",
    "DockerSandbox",
    "Limits",
    "LocalSandbox",
    "PythonTool",
    "Sandbox",
    "SandboxFusionSandbox",
    "ToolCache",
    "ToolResult",
    "default_sandbox",
    "docker_available",
    "is_cacheable",
    "make_sandbox",
]


SANDBOX_KINDS: tuple[str, ...] = ("auto", "docker", "local", "fusion")
"""The kinds `make_sandbox` builds ("sandbox_fusion" is another name for "fusion")."""


def make_sandbox(kind: str = "auto", **options: Any) -> Sandbox:
    """The sandbox of a kind, built with `options` (limits, workers, preload, ...): the one place that turns
    a kind name (a CLI flag, a recipe's `tool.sandbox`) into a sandbox. A sandbox is the Python tool itself.

    - "auto": a `DockerSandbox` when a Docker engine and the sandbox image are there, else a `LocalSandbox`.
    - "docker": `DockerSandbox(**options)`; "local": `LocalSandbox(**options)`.
    - "fusion" (or "sandbox_fusion"): `SandboxFusionSandbox(url=..., **options)`, a SandboxFusion server.

    ```python
    tool = make_sandbox("local", timeout_s=5)
    fusion = make_sandbox("fusion", url="http://localhost:8080", timeout_s=10)
    ```

    Raises:
        ConfigError: an unknown kind (the message lists the valid ones), or "fusion" without `url`.
    """
    if kind == "auto":
        return DockerSandbox(**options) if docker_available() is None else LocalSandbox(**options)
    if kind == "docker":
        return DockerSandbox(**options)
    if kind == "local":
        return LocalSandbox(**options)
    if kind in ("fusion", "sandbox_fusion"):
        if not options.get("url"):
            raise ConfigError(
                f"sandbox {kind!r} needs url= (the SandboxFusion server, e.g. http://host:8080)"
            )
        return SandboxFusionSandbox(**options)
    raise ConfigError(
        f"unknown sandbox kind {kind!r}: use one of {', '.join(SANDBOX_KINDS)} (or sandbox_fusion)"
    )


def default_sandbox(**kwargs: Any) -> Sandbox:
    """A `DockerSandbox` when a Docker engine and the sandbox image are there, else a `LocalSandbox`
    (`make_sandbox("auto", **kwargs)`).

    Keyword arguments (limits, workers, preload) go to the chosen sandbox's constructor.
    """
    return make_sandbox("auto", **kwargs)
