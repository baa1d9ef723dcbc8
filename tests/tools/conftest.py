"""Fixtures for the sandbox tests: one sandbox per backend per module, with small limits so that
every limit is hit in well under the time budget, and a final check that nothing was left behind."""

from __future__ import annotations

import os

import pytest
import pytest_asyncio

from torl.tools import DockerSandbox, Limits, LocalSandbox

SECRET = "torl-test-secret-4f1c2e"
os.environ["TORL_TEST_SECRET"] = SECRET  # must never be visible to a cell

LIMITS = Limits(timeout_s=3, memory_mb=200, max_output=4096, max_procs=32, cpu_s=2, fsize_mb=1)
BACKENDS = ["local", pytest.param("docker", marks=pytest.mark.docker)]


def make_sandbox(kind: str, **kw):
    kw.setdefault("limits", LIMITS)
    kw.setdefault("workers", 2)
    if kind == "local":
        return LocalSandbox(**kw)
    return DockerSandbox(**kw)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def sandbox(request):
    """A started sandbox of each backend, shared by the tests of a module."""
    sb = make_sandbox(request.param)
    async with sb:
        yield sb


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """After the whole run: no sandbox container and no process running as a cell uid remains."""
    yield
    import psutil

    from torl.tools.local_sandbox import cell_uids

    uids = cell_uids()
    left = [
        p.info
        for p in psutil.process_iter(["pid", "name", "uids", "status"])
        if p.info["uids"] and p.info["uids"].real in uids and p.info["status"] != psutil.STATUS_ZOMBIE
    ]
    for c in psutil.Process().children(recursive=True):  # workers (and bwrap) carry the worker source
        try:
            if any("The sandbox worker" in a for a in c.cmdline()):
                left.append({"pid": c.pid, "name": c.name()})
        except psutil.Error:
            pass
    assert not left, f"sandbox processes left behind: {left}"
    from torl.tools.docker_sandbox import LABEL, docker_available

    if docker_available() is None:
        import docker

        client = docker.from_env()
        mine = [
            c.name
            for c in client.containers.list(all=True, filters={"label": LABEL})
            if c.labels.get(LABEL, "").endswith(f":{os.getpid()}")
        ]
        client.close()
        assert not mine, f"sandbox containers left behind: {mine}"
