"""When the process that owns a sandbox is killed outright (SIGKILL, no cleanup code runs), its
workers and containers still go away by themselves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

OWNER = """
import asyncio, json, sys
from torl.tools import DockerSandbox, LocalSandbox

async def main():
    kind = sys.argv[1]
    sb = (LocalSandbox if kind == "local" else DockerSandbox)(timeout_s=3, workers=2, preload=())
    await sb.start()
    await sb.open_session()
    ids = [s.conn.worker_pid for s in sb._slots] if kind == "local" else sb.container_ids()
    print(json.dumps(ids), flush=True)
    await sb.execute("import time; time.sleep(100)")  # in flight when we are killed

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("kind", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_owner_killed_leaves_nothing(kind):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    owner = subprocess.Popen([sys.executable, "-c", OWNER, kind], stdout=subprocess.PIPE, text=True, env=env)
    try:
        ids = json.loads(owner.stdout.readline())
        assert len(ids) == 2
        time.sleep(0.5)
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    if kind == "local":
        left = lambda: [p for p in ids if _alive(p)]
    else:
        import docker

        client = docker.from_env()
        left = lambda: [c for c in ids if client.containers.list(all=True, filters={"id": c})]
    deadline = time.monotonic() + 30
    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left(), f"{kind} sandbox outlived its owner: {left()}"
