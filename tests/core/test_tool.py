"""The one tool lifecycle: setup once on first use (locked), teardown once, legacy start/close overrides."""

from __future__ import annotations

import asyncio

import pytest

from torl.core import Tool, ToolCall, ToolResult


class Counting(Tool):
    name = "count"

    def __init__(self) -> None:
        self.setups = self.teardowns = 0

    async def setup(self) -> None:
        await asyncio.sleep(0.05)  # concurrent first users must wait for this one setup
        self.setups += 1

    async def teardown(self) -> None:
        self.teardowns += 1

    async def run(self, call: ToolCall) -> ToolResult:
        assert self.started, "run before setup finished"
        return ToolResult(output=call.code)


async def test_concurrent_first_use_sets_up_once():
    tool = Counting()
    await asyncio.gather(*(tool.start() for _ in range(8)))
    assert tool.setups == 1 and tool.started
    await tool.close()
    await tool.close()
    assert tool.teardowns == 1 and not tool.started
    async with tool:  # a closed tool starts again
        assert (await tool.run(ToolCall(code="x"))).output == "x"
    assert (tool.setups, tool.teardowns) == (2, 2)


async def test_failed_setup_is_retried_and_not_marked_started():
    class Flaky(Counting):
        async def setup(self) -> None:
            self.setups += 1
            if self.setups == 1:
                raise ConnectionError("engine down")

    tool = Flaky()
    with pytest.raises(ConnectionError):
        await tool.start()
    assert not tool.started
    await tool.start()
    assert tool.started and tool.setups == 2


async def test_tools_written_for_torl_0_1_still_work():
    class Legacy(Tool):
        name = "legacy"
        events: list[str] = []

        async def start(self) -> None:  # torl 0.1 style: override start/close, calling super
            await super().start()
            self.events.append("start")

        async def close(self) -> None:
            self.events.append("close")
            await super().close()

        async def run(self, call: ToolCall) -> ToolResult:
            return ToolResult()

    tool = Legacy()
    await asyncio.gather(tool.start(), tool.start())
    async with tool:
        pass
    assert Legacy.events == ["start", "close"]


def test_schema_is_the_openai_function_shape():
    s = Counting().schema()
    assert s["type"] == "function" and s["function"]["name"] == "count"
    assert s["function"]["parameters"]["required"] == ["code"]
