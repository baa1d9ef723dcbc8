"""LocalSandbox specifics: the rlimits-only mode (no bwrap), worker replacement, clean shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from torl.tools import LocalSandbox
from torl.tools.local_sandbox import bwrap_works, cell_uids

from .conftest import LIMITS, SECRET

ROOT = os.geteuid() == 0


@pytest.mark.parametrize(
    "isolation",
    [
        "none",
        pytest.param(
            "bwrap",
            marks=pytest.mark.skipif(
                not bwrap_works(), reason="bubblewrap missing or unable to create namespaces"
            ),
        ),
    ],
)
async def test_isolation_modes(isolation, tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    async with LocalSandbox(limits=LIMITS, workers=1, preload=(), isolation=isolation) as sb:
        assert sb.isolation == isolation
        r = await sb.execute("import os\nprint(os.getuid() == 0)")
        assert r.output == f"{not ROOT and os.getuid() == 0}\n"
        r = await sb.execute(f"print(open({str(secret)!r}).read())")
        if ROOT or isolation == "bwrap":
            assert r.status == "error" and SECRET not in r.output
        assert (await sb.execute("while True: pass")).status == "timeout"
        assert (await sb.execute("x = bytearray(2 * 1024**3)")).status == "memory"
        daemon = (  # it names itself, so that we can look for it
            "import ctypes, os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        ctypes.CDLL(None).prctl(15, b'torl-daemon', 0, 0, 0)\n        time.sleep(1000)\n"
            "    os._exit(0)\ntime.sleep(0.2)\nprint(os.getpid())"
        )
        assert (await sb.execute(daemon)).ok
        # A worker answers as soon as a cell is done, then sweeps before it takes the next cell.
        assert (await sb.execute("pass")).ok
        if ROOT or isolation == "bwrap":  # the daemon ran as a uid of its own or in a pid namespace

            def left() -> tuple[list[psutil.Process], list[psutil.Process]]:
                """Live daemons; live processes of the cells' uids besides the worker."""
                worker = sb._slots[0].conn.worker_pid
                procs = [
                    p for p in psutil.process_iter(["name", "uids", "status"]) if p.info["status"] != "zombie"
                ]
                return (
                    [p for p in procs if p.info["name"] == "torl-daemon"],
                    [p for p in procs if p.info["uids"].real in cell_uids() and p.pid != worker],
                )

            deadline = time.monotonic() + 10  # the last cell's own process may still be exiting
            while (left()[0] or len(left()[1]) > 1) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            daemons, others = left()
            assert not daemons
            if ROOT:  # at most the process forked ahead for the next cell
                assert len(others) <= 1, others
        r = await sb.execute("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('ran')")
        assert (await sb.execute("print('serving')")).output == "serving\n"


async def test_dead_worker_is_replaced():
    async with LocalSandbox(limits=LIMITS, workers=1, preload=()) as sb:
        sid = await sb.open_session()
        pid = sb._slots[0].conn.worker_pid
        os.kill(pid, signal.SIGKILL)
        r = await sb.execute("print(1)")  # the cell that meets the dead worker reports it
        assert r.status in ("sandbox_error", "ok")
        assert (await sb.execute("print(2)")).output == "2\n"
        assert sb._slots[0].conn.worker_pid != pid
        r = await sb.execute("print(1)", sid)
        assert r.status == "error" and ("unknown session" in r.error or "ended" in r.error)


async def test_close_leaves_nothing_and_is_idempotent():
    def live_children() -> set[int]:
        # Other tests' long-lived helpers (reward workers, engines) may be running: compare with before.
        return {c.pid for c in psutil.Process().children(recursive=True) if c.status() != "zombie"}

    before = live_children()
    sb = LocalSandbox(limits=LIMITS, workers=2, preload=())
    await sb.start()
    await sb.open_session()
    pids = [s.conn.proc.pid for s in sb._slots]
    assert set(pids) <= live_children() - before
    await sb.close()
    await sb.close()
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not live_children() - before
    with pytest.raises(RuntimeError):
        await sb.execute("print(1)")


async def test_missing_python_is_a_clear_error():
    with pytest.raises((OSError, RuntimeError)):
        async with LocalSandbox(workers=1, python="/nonexistent/python3", isolation="none"):
            pass


async def test_worker_heals_its_folders():
    async with LocalSandbox(limits=LIMITS, workers=1, preload=()) as sb:
        r = await sb.execute(
            "import os, shutil\nos.chdir('/')\nshutil.rmtree('/tmp/work')\nopen('/tmp/work', 'w')"
        )
        assert r.ok, r
        assert (await sb.execute("import os\nprint(os.getcwd())")).output == "/tmp/work/cell\n"


async def test_failing_worker_is_replaced():
    async with LocalSandbox(limits=LIMITS, workers=1, preload=()) as sb:
        slot = sb._slots[0]
        pid = slot.conn.worker_pid
        reply = await sb._call(slot, {"op": "no-such-op", "limits": LIMITS.to_worker()})
        assert reply["status"] == "sandbox_error" and "no-such-op" in reply["error"]
        assert slot.conn.worker_pid != pid
        assert (await sb.execute("print(2)")).output == "2\n"
