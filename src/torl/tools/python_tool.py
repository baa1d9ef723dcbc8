"""`PythonTool`: the Python tool over a sandbox. Every `Sandbox` is a `Tool` itself, so this only picks one."""

from __future__ import annotations

from torl.tools.sandbox import Sandbox


def PythonTool(sandbox: Sandbox | None = None) -> Sandbox:  # kept from torl 0.1: reads as a class
    """The Python tool: `sandbox` itself (a sandbox is a `Tool` named "python"), or `default_sandbox()`.

    Example:
        ```python
        async with PythonTool(LocalSandbox(timeout_s=5)) as tool:
            r = await tool.execute("print(1 + 1)")
            assert r.ok and r.output == "2\\n"
        ```

    `PythonTool(DockerSandbox())` is the same object as `DockerSandbox()`; pass a sandbox straight to
    `tool=` / `tools=` if you prefer.
    """
    if sandbox is None:
        from torl.tools import default_sandbox

        return default_sandbox()
    if not isinstance(sandbox, Sandbox):
        raise TypeError(f"PythonTool wants a torl Sandbox, got {type(sandbox).__name__}")
    return sandbox
