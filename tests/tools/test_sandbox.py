"""What every backend must do for ordinary code: output, errors, limits, sessions, concurrency."""

from __future__ import annotations

import asyncio
import dataclasses
import sys

import pytest

from torl.core import ToolCall
from torl.tools import LocalSandbox, PythonTool, ToolResult

from .conftest import LIMITS

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_prints_and_reports_ok(sandbox):
    r = await sandbox.execute("print(1 + 1)\nprint('b')")
    assert isinstance(r, ToolResult)
    assert (r.ok, r.status, r.output, r.truncated, r.error) == (True, "ok", "2\nb\n", False, None)
    assert 0 < r.duration_s < LIMITS.timeout_s


async def test_empty_output(sandbox):
    r = await sandbox.execute("x = 41 + 1")
    assert r.ok and r.output == ""


async def test_stderr_is_part_of_output(sandbox):
    r = await sandbox.execute("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert r.ok
    assert "out\n" in r.output and "err\n" in r.output


async def test_preloaded_modules_work(sandbox):
    r = await sandbox.execute("import sympy, numpy; print(sympy.factorint(360), numpy.arange(3).sum())")
    assert r.ok, r
    assert r.output == "{2: 3, 3: 2, 5: 1} 3\n"


async def test_error_gives_traceback_and_last_line(sandbox):
    r = await sandbox.execute("a = 1\nprint('before')\nb = a + c")
    assert r.status == "error"
    assert r.error == "NameError: name 'c' is not defined"
    assert r.output.startswith("before\nTraceback (most recent call last):\n")
    assert 'File "<cell>", line 3' in r.output and "b = a + c" in r.output
    assert r.output.rstrip().endswith(r.error)


async def test_syntax_error(sandbox):
    r = await sandbox.execute("def f(:\n  pass")
    assert r.status == "error"
    assert r.error.startswith("SyntaxError")
    assert "<cell>" in r.output


async def test_library_traceback_shows_no_host_paths(sandbox):
    r = await sandbox.execute("import sympy\nsympy.Integer('x')")
    assert r.status == "error"
    assert "Traceback" in r.output and "sympy" in r.output
    for host_path in {sys.prefix, sys.base_prefix, "/work/", "/root/"}:
        assert host_path not in r.output
    assert "_worker" not in r.output and 'File "<string>"' not in r.output


async def test_sys_exit(sandbox):
    assert (await sandbox.execute("import sys; print('x'); sys.exit(0)")).ok
    r = await sandbox.execute("import sys; sys.exit(3)")
    assert (r.status, r.error) == ("error", "SystemExit: 3")


async def test_cells_are_stateless(sandbox):
    write = "secret_value = 7\nopen('mine.txt', 'w').write('x')\nopen('/tmp/left.txt', 'w').write('x')"
    assert (await sandbox.execute(write)).ok
    check = "import os\nprint('secret_value' in globals(), os.path.exists('mine.txt'), os.path.exists('/tmp/left.txt'))"
    for r in await asyncio.gather(*(sandbox.execute(check) for _ in range(2 * sandbox.workers))):
        assert r.output == "False False False\n"


async def test_wall_clock_limit(sandbox):
    r = await sandbox.execute("import time\nprint('started', flush=True)\ntime.sleep(60)")
    assert r.status == "timeout"
    assert "wall-clock" in r.error
    assert r.output == "started\n"  # what was printed before the kill is kept
    assert LIMITS.timeout_s <= r.duration_s < LIMITS.timeout_s + 5


async def test_cpu_limit(sandbox):
    lim = dataclasses.replace(LIMITS, timeout_s=30, cpu_s=1)
    r = await sandbox.execute("while True:\n    pass", limits=lim)
    assert (r.status, r.error) == ("timeout", "CPU time limit (1 s) exceeded")


async def test_per_call_limits(sandbox):
    r = await sandbox.execute(
        "import time; time.sleep(0.5); print('done')", limits=dataclasses.replace(LIMITS, timeout_s=0.2)
    )
    assert r.status == "timeout" and "0.2 s" in r.error
    r = await sandbox.execute("print('x' * 100)", limits=dataclasses.replace(LIMITS, max_output=20))
    assert r.truncated and r.output.startswith("x" * 10 + "\n[... 81 bytes")


async def test_memory_limit(sandbox):
    r = await sandbox.execute("x = bytearray(2 * 1024**3)")
    assert (r.status, r.error.split(":")[0]) == ("memory", "memory limit (200 MB) exceeded")


async def test_memory_limit_numpy(sandbox):
    r = await sandbox.execute("import numpy as np\na = np.ones((50_000, 50_000))")
    assert r.status == "memory"


async def test_memory_within_limit_is_fine(sandbox):
    r = await sandbox.execute("x = bytearray(100 * 1024**2)\nprint(len(x))")
    assert r.ok and r.output == f"{100 * 1024**2}\n"


async def test_output_limit_truncates_with_marker(sandbox):
    r = await sandbox.execute("print('A' * 3000 + 'B' * 10000 + 'C' * 3000)")
    assert r.ok and r.truncated
    assert r.output.startswith("A" * 2048) and r.output.rstrip("\n").endswith("C" * 2000)
    assert "bytes of output truncated" in r.output
    assert len(r.output) < LIMITS.max_output + 100


async def test_process_limit(sandbox):
    code = "import subprocess\nps = [subprocess.Popen(['sleep', '30']) for _ in range(60)]"
    r = await sandbox.execute(code)
    assert r.status == "killed", r
    assert r.error.startswith("process limit (32) reached")


async def test_file_size_limit(sandbox):
    r = await sandbox.execute("open('big.bin', 'wb').write(b'x' * (2 * 1024**2))")
    assert (r.status, r.error.split(":")[0]) == ("killed", "file size limit (1 MB) exceeded")


async def test_unicode_and_binary_output(sandbox):
    r = await sandbox.execute("import sys\nprint('π ≈ 3.14159 ✓')\nsys.stdout.buffer.write(b'\\xff\\xfe\\n')")
    assert r.ok
    assert r.output.startswith("π ≈ 3.14159 ✓\n") and "\ufffd" in r.output


async def test_concurrent_callers_share_the_pool(sandbox):
    codes = [f"import time; time.sleep(0.05); print({i} * {i})" for i in range(16)]
    results = await asyncio.gather(*(sandbox.execute(c) for c in codes))
    assert [r.output for r in results] == [f"{i * i}\n" for i in range(16)]


async def test_sessions_share_state_like_a_notebook(sandbox):
    s1, s2 = await sandbox.open_session(), await sandbox.open_session()
    try:
        assert (
            await sandbox.execute(
                "import sympy\nx = sympy.Symbol('x')\nn = 41\nopen('keep.txt', 'w').write('kept')", s1
            )
        ).ok
        await asyncio.gather(
            *(sandbox.execute("open('/tmp/junk', 'w').write('x')") for _ in range(2 * sandbox.workers))
        )
        assert (await sandbox.execute("print(open('keep.txt').read())", s1)).output == "kept\n"
        r = await sandbox.execute("n += 1\nprint(n, sympy.expand((x + 1)**2))", s1)
        assert (r.status, r.output) == ("ok", "42 x**2 + 2*x + 1\n")
        assert (await sandbox.execute("print('n' in globals())", s2)).output == "False\n"
        assert (await sandbox.execute("print('n' in globals())")).output == "False\n"
        r = await sandbox.execute("1/0", s1)  # an error in a cell does not end the session
        assert r.status == "error" and r.error == "ZeroDivisionError: division by zero"
        assert (await sandbox.execute("print(n)", s1)).output == "42\n"
    finally:
        await sandbox.close_session(s1)
        await sandbox.close_session(s2)
    r = await sandbox.execute("print(n)", s1)
    assert r.status == "error" and "unknown session" in r.error


async def test_session_ends_clearly_when_a_cell_kills_it(sandbox):
    sid = await sandbox.open_session()
    assert (await sandbox.execute("n = 1", sid)).ok
    r = await sandbox.execute("import os; os._exit(0)", sid)
    assert r.status == "error" and "session ended" in r.error
    r = await sandbox.execute("print(n)", sid)
    assert r.status == "error" and ("unknown session" in r.error or "ended" in r.error)
    await sandbox.close_session(sid)  # closing an ended session is fine


async def test_session_timeout_ends_session(sandbox):
    sid = await sandbox.open_session()
    r = await sandbox.execute("while True: pass", sid)
    assert r.status == "timeout" and "session ended" in r.error
    assert (await sandbox.execute("print(1)")).ok


async def test_sessions_and_stateless_cells_concurrently(sandbox):
    sids = [await sandbox.open_session() for _ in range(3)]
    await asyncio.gather(*(sandbox.execute(f"v = {i}", s) for i, s in enumerate(sids)))
    runs = [sandbox.execute("print(v * 10)", s) for s in sids] + [
        sandbox.execute("print('free')") for _ in range(4)
    ]
    results = await asyncio.gather(*runs)
    assert [r.output for r in results] == ["0\n", "10\n", "20\n"] + ["free\n"] * 4
    for s in sids:
        await sandbox.close_session(s)


async def test_bad_input_is_an_error_not_an_exception(sandbox):
    r = await sandbox.execute(b"print(1)")  # type: ignore[arg-type]
    assert r.status == "error" and "must be a str" in r.error
    assert (await sandbox.execute("")).ok
    r = await sandbox.execute("print(1)", session="no-such-session")
    assert r.status == "error" and "unknown session" in r.error


async def test_python_tool_api(sandbox):
    tool = PythonTool(sandbox)  # already started by the fixture; the tool just uses it
    r = await tool.execute("print(6 * 7)")
    assert (r.ok, r.output) == (True, "42\n")
    r = await tool.run(ToolCall(code="print('via run')"))
    assert r.output == "via run\n"
    sid = await tool.open_session()
    assert sid
    await tool.run(ToolCall(code="k = 5", session=sid))
    assert (await tool.run(ToolCall(code="print(k)", session=sid))).output == "5\n"
    await tool.close_session(sid)


async def test_python_tool_context_manager():
    async with PythonTool(LocalSandbox(timeout_s=5, workers=1, preload=())) as tool:
        r = await tool.execute("print(1 + 1)")
        assert (r.ok, r.status, r.output, r.truncated) == (True, "ok", "2\n", False)
    with pytest.raises(RuntimeError, match="not started"):
        await tool.execute("print(1)")


async def test_duration_is_what_the_caller_waited(sandbox):
    # Twice as many cells as workers: half of them wait for a worker first, and their duration says so.
    n = 2 * sandbox.workers
    results = await asyncio.gather(*(sandbox.execute("import time; time.sleep(0.3)") for _ in range(n)))
    assert all(r.ok for r in results)
    waits = sorted(r.duration_s for r in results)
    assert waits[0] >= 0.3 and waits[-1] >= 0.6, waits
    results = await sandbox.execute_many(["import time; time.sleep(0.3)"] * n)
    assert all(r.ok for r in results) and max(r.duration_s for r in results) >= 0.6


async def test_execute_many_keeps_order_isolation_and_limits(sandbox):
    short = dataclasses.replace(LIMITS, timeout_s=0.5)
    cells = [
        "print(1)",
        "x = 1 / 0",
        "while True: pass",
        "leaked = 5\nopen('/tmp/leak', 'w').write('x')\nprint('set')",
        b"print(2)",  # not a str: an error result, not an exception
        "print('x' * 10_000)",
    ]
    cells += ["import os\nprint('leaked' in globals(), os.path.exists('/tmp/leak'))"] * (2 * sandbox.workers)
    limits = [None, None, short, None, None, dataclasses.replace(LIMITS, max_output=100)]
    rs = await sandbox.execute_many(cells, limits=limits + [None] * (len(cells) - len(limits)))  # type: ignore[arg-type]
    assert [r.status for r in rs[:6]] == ["ok", "error", "timeout", "ok", "error", "ok"]
    assert rs[0].output == "1\n" and rs[1].error == "ZeroDivisionError: division by zero"
    assert "0.5 s" in rs[2].error and "must be a str" in rs[4].error
    assert rs[5].truncated and len(rs[5].output) < 200
    assert all(r.output == "False False\n" for r in rs[6:]), [r.output for r in rs[6:]]
    assert await sandbox.execute_many([]) == []
    with pytest.raises(ValueError, match="limits"):
        await sandbox.execute_many(["print(1)"], limits=[None, None])


async def test_execute_many_with_sessions_and_run_many(sandbox):
    sid = await sandbox.open_session()
    try:
        cells = [("n = 1", sid), "print('free')", ("n += 1", sid), ("print(n)", sid), ("print(1)", "nope")]
        rs = await sandbox.execute_many(cells)
        assert [r.output for r in rs[:4]] == ["", "free\n", "", "2\n"]
        assert rs[4].status == "error" and "unknown session" in rs[4].error
        calls = [ToolCall(code="print(n * 10)", session=sid), ToolCall(code="print('n' in globals())")]
        assert [r.output for r in await sandbox.run_many(calls)] == ["20\n", "False\n"]
    finally:
        await sandbox.close_session(sid)


async def test_warmup_runs_in_the_worker_before_cells_fork():
    probe = "import sys\nprint(getattr(sys, 'torl_warm', None))"
    async with LocalSandbox(
        limits=LIMITS, workers=1, preload=(), warmup=["import sys; sys.torl_warm = 7"]
    ) as sb:
        assert (await sb.execute(probe)).output == "7\n"
        assert sb.worker_info()[0]["warmup_failed"] == 0
    async with LocalSandbox(limits=LIMITS, workers=1, preload=(), warmup=["1 / 0"]) as sb:
        assert sb.worker_info()[0]["warmup_failed"] == 1  # reported, not fatal
        assert (await sb.execute(probe)).output == "None\n"


async def test_default_warmup_runs_cleanly(sandbox):
    # The default warm-up exercises numpy and sympy as model cells do; on every backend's Python and
    # packages (the Docker image has Debian's) each snippet must run to its end.
    assert all(i["warmup_failed"] == 0 and i["warmup_s"] > 0 for i in sandbox.worker_info())


async def test_a_cancelled_call_neither_poisons_nor_costs_a_worker(sandbox):
    """A caller cancelled while its cell runs (a rollout stopped, a trainer closed): the worker finishes
    that cell, and the next callers on it get their own answers, from the same worker."""
    conns = [s.conn for s in sandbox._slots]  # the workers themselves (a container's pid is always 1)
    slow = [asyncio.create_task(sandbox.execute("import time\ntime.sleep(0.6)\nprint('old')")) for _ in conns]
    await asyncio.sleep(0.25)
    for t in slow:
        t.cancel()
    await asyncio.gather(*slow, return_exceptions=True)
    results = await asyncio.gather(*(sandbox.execute(f"print({i})") for i in range(2 * len(conns))))
    assert [(r.status, r.output) for r in results] == [("ok", f"{i}\n") for i in range(2 * len(conns))]
    assert [s.conn for s in sandbox._slots] == conns  # no worker was replaced
