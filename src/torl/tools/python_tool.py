"""`PythonTool`: the `Tool` that runs the model's Python cells in a `Sandbox`."""

from __future__ import annotations

from torl.core import Tool, ToolCall, ToolResult
from torl.tools.sandbox import Limits, Sandbox


class PythonTool(Tool):
    """Runs Python code in a sandbox; stateless per call unless the call names a session.

    Example:
        ```python
        async with PythonTool(LocalSandbox(timeout_s=5)) as tool:
            r = await tool.execute("print(1 + 1)")
            assert r.ok and r.output == "2\\n"
        ```

    Args:
        sandbox: where cells run; default `default_sandbox()` (Docker if available, else local).
            The tool starts and closes it.
    """

    name = "python"

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        if sandbox is None:
            from torl.tools import default_sandbox

            sandbox = default_sandbox()
        self.sandbox = sandbox

    async def start(self) -> None:
        await self.sandbox.start()

    async def close(self) -> None:
        await self.sandbox.close()

    async def run(self, call: ToolCall) -> ToolResult:
        return await self.sandbox.run(call.code, call.session)

    async def execute(
        self, code: str, session: str | None = None, *, limits: Limits | None = None
    ) -> ToolResult:
        """Run `code` (in `session` if given; with `limits` instead of the sandbox's) and return the result."""
        return await self.sandbox.run(code, session, limits=limits)

    async def open_session(self) -> str | None:
        return await self.sandbox.open_session()

    async def close_session(self, session: str | None) -> None:
        if session is not None:
            await self.sandbox.close_session(session)
