"""A tool that wraps another: for tests and benchmarks that watch or slow down a real sandbox."""

from __future__ import annotations

from torl.core import Tool, ToolCall, ToolResult


class WrappingTool(Tool):
    """Starts, stops and opens sessions on `inner`, and runs its calls there; subclasses change `run`."""

    name = "python"

    def __init__(self, inner: Tool) -> None:
        self.inner = inner

    async def setup(self) -> None:
        await self.inner.start()

    async def teardown(self) -> None:
        await self.inner.close()

    async def open_session(self) -> str | None:
        return await self.inner.open_session()

    async def close_session(self, session: str | None) -> None:
        await self.inner.close_session(session)

    async def run(self, call: ToolCall) -> ToolResult:
        return await self.inner.run(call)
