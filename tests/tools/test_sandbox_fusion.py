"""SandboxFusionSandbox against a real /run_code server (tests/tools/fusion_server.py, which runs the
code in a LocalSandbox) and against canned SandboxFusion answers."""

from __future__ import annotations

import asyncio
import socket

import pytest
import pytest_asyncio

from torl.tools import Limits, LocalSandbox, PythonTool, SandboxFusionSandbox
from torl.tools.sandbox_fusion import parse_run_code

from .conftest import LIMITS
from .fusion_server import serve

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server_url():
    async with LocalSandbox(limits=LIMITS, workers=2) as local, serve(local) as url:
        yield url


async def test_ok_error_timeout_truncation(server_url):
    async with PythonTool(SandboxFusionSandbox(server_url, limits=LIMITS)) as tool:
        r = await tool.execute("import sympy; print(sympy.factorint(360))")
        assert (r.status, r.output, r.error) == ("ok", "{2: 3, 3: 2, 5: 1}\n", None)
        r = await tool.execute("print('partial')\nundefined_name")
        assert r.status == "error" and r.error == "NameError: name 'undefined_name' is not defined"
        assert r.output.startswith("partial\nTraceback")
        r = await tool.execute("while True: pass")
        assert r.status == "timeout"
        r = await tool.execute("print('x' * 100_000)")
        assert r.ok and r.truncated and "bytes of output truncated" in r.output
        r = await tool.execute("x = bytearray(2 * 1024**3)")
        assert r.status == "memory"


async def test_many_concurrent_callers(server_url):
    async with SandboxFusionSandbox(server_url, limits=LIMITS, max_concurrency=4) as sb:
        results = await asyncio.gather(*(sb.execute(f"print({i} + 1)") for i in range(24)))
        assert [r.output for r in results] == [f"{i + 1}\n" for i in range(24)]


async def test_retries_on_5xx(server_url):
    async with SandboxFusionSandbox(server_url + "/flaky", limits=LIMITS, retries=2) as sb:
        r = await sb.execute("print('made it')")
        assert (r.status, r.output) == ("ok", "made it\n")
    async with SandboxFusionSandbox(server_url + "/flaky", limits=LIMITS, retries=0) as sb:
        r = await sb.execute("print('once')")
        assert r.status == "sandbox_error" and "503" in r.error


async def test_server_side_sandbox_error(server_url):
    async with SandboxFusionSandbox(server_url + "/broken", limits=LIMITS) as sb:
        r = await sb.execute("print(1)")
        assert (r.status, r.error) == ("sandbox_error", "executor pod crashed")


async def test_unreachable_server_and_bad_calls():
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with SandboxFusionSandbox(f"http://127.0.0.1:{port}", retries=1) as sb:
        r = await sb.execute("print(1)")
        assert r.status == "sandbox_error" and "ConnectError" in r.error
        r = await sb.execute("print(1)", session="s1")
        assert r.status == "error" and "no sessions" in r.error
        assert await sb.open_session() is None  # stateless: the engine runs its cells without a session
    with pytest.raises(RuntimeError, match="not started"):
        await SandboxFusionSandbox("http://127.0.0.1:1").execute("print(1)")


async def test_parse_sandbox_fusion_answers():
    lim = Limits(max_output=64)
    ok = {
        "status": "Success",
        "message": "",
        "run_result": {
            "status": "Finished",
            "execution_time": 0.05,
            "return_code": 0,
            "stdout": "hello\n",
            "stderr": "",
        },
    }
    r = parse_run_code(ok, lim, duration_s=0.3)  # the client's wall clock, not the server's execution_time
    assert (r.status, r.output, r.duration_s) == ("ok", "hello\n", 0.3)
    failed = {
        "status": "Failed",
        "message": "",
        "run_result": {
            "status": "Finished",
            "return_code": 1,
            "stdout": "",
            "stderr": 'Traceback (most recent call last):\n  File "/tmp/x.py", line 1\nZeroDivisionError: division by zero\n',
        },
    }
    r = parse_run_code(failed, lim)
    assert (r.status, r.error) == ("error", "ZeroDivisionError: division by zero")
    tle = {
        "status": "Failed",
        "message": "",
        "run_result": {"status": "TimeLimitExceeded", "return_code": None, "stdout": "x" * 200, "stderr": ""},
    }
    r = parse_run_code(tle, lim)
    assert r.status == "timeout" and r.truncated
    r = parse_run_code({"status": "SandboxError", "message": "boom", "run_result": None}, lim)
    assert (r.status, r.error) == ("sandbox_error", "boom")
    r = parse_run_code(
        {
            "status": "Failed",
            "run_result": {"status": "Finished", "return_code": -11, "stdout": "", "stderr": ""},
        },
        lim,
    )
    assert r.status == "killed"
