"""DockerSandbox specifics: container hardening, replacement of dead containers, no leaks, DOCKER_HOST."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from torl.errors import SandboxUnavailableError
from torl.tools import DockerSandbox, default_sandbox, docker_available
from torl.tools.docker_sandbox import DEFAULT_IMAGE, LABEL

from .conftest import LIMITS

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def client():
    import docker

    c = docker.from_env()
    yield c
    c.close()


async def test_containers_are_locked_down(client):
    async with DockerSandbox(limits=LIMITS, workers=1, preload=()) as sb:
        (cid,) = sb.container_ids()
        attrs = client.api.inspect_container(cid)
        hc, cfg = attrs["HostConfig"], attrs["Config"]
        assert hc["NetworkMode"] == "none" and cfg.get("NetworkDisabled") is True
        assert hc["ReadonlyRootfs"] is True
        assert hc["CapDrop"] == ["ALL"] and not hc.get("CapAdd")
        assert "no-new-privileges" in hc["SecurityOpt"]
        assert hc["Memory"] > 0 and hc["MemorySwap"] == hc["Memory"]
        assert hc["PidsLimit"] == LIMITS.max_procs + 16
        assert hc["NanoCpus"] == int(1e9)
        assert "/tmp" in hc["Tmpfs"] and not hc.get("Binds")
        assert hc["Privileged"] is False
        assert cfg["User"] == "65534:65534"
        assert cfg["Labels"][LABEL] == f"{socket.gethostname()}:{os.getpid()}"
        r = await sb.execute(
            "import os\nprint(os.getuid(), os.getgid())\nprint(open('/proc/self/status').read())"
        )
        assert r.output.startswith("65534 65534\n")
        assert "CapEff:\t0000000000000000" in r.output and "NoNewPrivs:\t1" in r.output
    assert not client.containers.list(all=True, filters={"id": cid})


async def test_dead_container_is_replaced(client):
    async with DockerSandbox(limits=LIMITS, workers=1, preload=()) as sb:
        sid = await sb.open_session()
        (old,) = sb.container_ids()
        client.api.kill(old)
        r = await sb.execute("print(1)")
        assert r.status == "sandbox_error" and "worker" in r.error
        assert (await sb.execute("print(2)")).output == "2\n"
        (new,) = sb.container_ids()
        assert new != old
        r = await sb.execute("print(1)", sid)
        assert r.status == "error" and ("unknown session" in r.error or "ended" in r.error)


async def test_leftovers_of_dead_owners_are_removed(client):
    stale = client.api.create_container(
        DEFAULT_IMAGE, command=["sleep", "600"], labels={LABEL: f"{socket.gethostname()}:{2**22 + 12345}"}
    )
    alive = client.api.create_container(
        DEFAULT_IMAGE, command=["sleep", "600"], labels={LABEL: f"{socket.gethostname()}:{os.getpid()}"}
    )
    try:
        async with DockerSandbox(limits=LIMITS, workers=1, preload=()):
            ids = {c.id for c in client.containers.list(all=True, filters={"label": LABEL})}
            assert stale["Id"] not in ids and alive["Id"] in ids
    finally:
        for c in (stale, alive):
            try:
                client.api.remove_container(c["Id"], force=True)
            except Exception:  # noqa: BLE001, S110
                pass


async def test_docker_host_is_honoured(monkeypatch):
    orig = os.environ.get("DOCKER_HOST")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    problem = docker_available()
    assert problem and "Docker engine" in problem
    with pytest.raises(SandboxUnavailableError, match="DockerSandbox unavailable"):  # a RuntimeError too
        async with DockerSandbox(workers=1):
            pass
    monkeypatch.setenv("DOCKER_HOST", orig or "unix:///var/run/docker.sock")
    assert docker_available() is None


def test_missing_image_is_reported():
    assert "not found" in docker_available("torl-no-such-image:0")


def test_default_sandbox_prefers_docker():
    assert isinstance(default_sandbox(), DockerSandbox)


OOM_CELL = """
import os, time
for _ in range(11):  # 11 x 25 MB, each under its own address-space limit, fill most of the container
    if os.fork() == 0:
        x = bytearray(25 * 1024**2)
        time.sleep(30)
        os._exit(0)
time.sleep(0.5)
chunks = [bytearray(1024**2) for _ in range(63)]  # the biggest process when the container runs out
print("survived")
"""


async def test_container_memory_limit_is_reported_as_memory():
    # memory_mb=64: each process may allocate 64 MB, the container 64 + 256 MB; together they do not fit
    async with DockerSandbox(memory_mb=64, timeout_s=10, workers=1, preload=()) as sb:
        r = await sb.execute(OOM_CELL)
        assert (r.status, r.error) == ("memory", "memory limit exceeded (killed by the OOM killer)")
        assert (await sb.execute("print('fine')")).output == "fine\n"


def _tcp_to_engine_proxy(engine_socket: str) -> tuple[socket.socket, int]:
    """A TCP port on 127.0.0.1 that forwards to the engine's unix socket: a "remote" engine."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(engine_socket)
            threading.Thread(target=pump, args=(client, engine), daemon=True).start()
            threading.Thread(target=pump, args=(engine, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


async def test_engine_over_tcp(monkeypatch):
    engine = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not engine.startswith("unix://"):
        pytest.skip("the engine is already remote")
    server, port = _tcp_to_engine_proxy(engine.removeprefix("unix://"))
    try:
        monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
        async with DockerSandbox(limits=LIMITS, workers=1, preload=()) as sb:
            r = await sb.execute("import socket\nprint(socket.gethostname() != '', 6 * 7)")
            assert (r.status, r.output) == ("ok", "True 42\n")
    finally:
        server.close()
