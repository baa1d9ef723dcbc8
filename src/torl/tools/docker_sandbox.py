"""`DockerSandbox`: a pool of warm, locked-down containers, each running the fork-server worker.

The docker SDK is imported only when a `DockerSandbox` starts (or `docker_available` is called).
DOCKER_HOST (and the other DOCKER_* variables) choose the engine, as for the docker CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

from torl.errors import SandboxUnavailableError
from torl.tools.sandbox import (
    CELL_ENV,
    DEFAULT_PRELOAD,
    WORKER_SOURCE,
    Limits,
    WorkerConn,
    WorkerError,
    WorkerPool,
    base_config,
    default_workers,
    limits_from,
)

log = logging.getLogger(__name__)

DEFAULT_IMAGE = os.environ.get("TORL_SANDBOX_IMAGE", "torl-sandbox:latest")
"""The image `scripts/build_sandbox_image.sh` builds (override with TORL_SANDBOX_IMAGE)."""
LABEL = "org.torl.sandbox.owner"
"""Label on every sandbox container: "<hostname>:<pid>" of the process that owns it."""
_WORKER_MEMORY_MB = 256  # the warm worker itself (numpy + sympy), on top of the cells' limit


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def docker_available(image: str | None = None) -> str | None:
    """None when a Docker engine answers and `image` (default: the sandbox image) exists; otherwise
    a short reason why not."""
    try:
        import docker
    except ImportError:
        return "the docker SDK is not installed (pip install 'torl[docker]')"
    try:
        client = docker.from_env(timeout=10)
    except Exception as e:  # noqa: BLE001
        return f"no Docker engine: {e}"
    try:
        client.ping()
        client.images.get(image or DEFAULT_IMAGE)
    except docker.errors.ImageNotFound:
        return f"image {image or DEFAULT_IMAGE} not found (run scripts/build_sandbox_image.sh)"
    except Exception as e:  # noqa: BLE001
        return f"Docker engine does not answer: {e}"
    finally:
        client.close()
    return None


def remove_leftovers(client: Any, all_owners: bool = False) -> int:
    """Remove sandbox containers whose owning process on this host is gone (or all, with
    `all_owners`). Returns how many were removed."""
    host = socket.gethostname()
    n = 0
    for c in client.containers.list(all=True, filters={"label": LABEL}):
        owner = c.labels.get(LABEL, "")
        name, _, pid = owner.rpartition(":")
        stale = all_owners
        if name == host and pid.isdigit():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                stale = True
            except PermissionError:
                pass
        if stale:
            with contextlib.suppress(Exception):
                c.remove(force=True)
                n += 1
    return n


class _ContainerConn(WorkerConn):
    """The worker in a container, reached through the attach socket (stdin in; stdout/stderr
    come multiplexed in 8-byte-header frames)."""

    def __init__(self, client: Any, container_id: str, raw: Any) -> None:
        self.client = client
        self.id = container_id
        self.raw = raw  # keeps the HTTP response (and so the socket) alive
        self.sock: socket.socket = getattr(raw, "_sock", raw)
        self.reader = asyncio.StreamReader(limit=1 << 26)
        self.info = {}
        self._stderr: deque[bytes] = deque(maxlen=50)
        self._transport: asyncio.Transport | None = None
        self._pump: asyncio.Task | None = None
        self._killed = False

    async def open(self) -> None:
        import ssl

        if not isinstance(self.sock, socket.socket) or isinstance(self.sock, ssl.SSLSocket):
            raise WorkerError(
                "DockerSandbox talks to containers over the engine's attach socket, which works for "
                "DOCKER_HOST=unix://... and tcp://... without TLS (not for TLS or ssh:// engines)"
            )
        self.sock.setblocking(False)
        r, self._transport_w = await asyncio.open_connection(sock=self.sock, limit=1 << 26)
        self._pump = asyncio.create_task(self._demux(r))

    async def _demux(self, r: asyncio.StreamReader) -> None:
        try:
            while True:
                head = await r.readexactly(8)
                kind, size = head[0], struct.unpack(">I", head[4:])[0]
                data = await r.readexactly(size)
                if kind == 1:
                    self.reader.feed_data(data)
                else:
                    self._stderr.append(data)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.reader.feed_eof()

    def diagnostics(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")

    async def send(self, data: bytes) -> None:
        self._transport_w.write(data)
        await self._transport_w.drain()

    async def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        with contextlib.suppress(Exception):
            self._transport_w.close()
        if self._pump:
            self._pump.cancel()

        def _remove() -> None:
            with contextlib.suppress(Exception):
                self.client.api.remove_container(self.id, force=True)

        await asyncio.to_thread(_remove)


class DockerSandbox(WorkerPool):
    """Cells run in warm containers: no network, read-only root, a small tmpfs /tmp, a non-root
    user, all capabilities dropped, no-new-privileges, and memory, CPU and pids limits. Each
    container's worker preloads modules once and forks a fresh child per cell. A container that
    dies or stops answering is replaced; containers are labelled with their owner so that a later
    start removes those a crashed process left behind.

    Args:
        image: the sandbox image; default `torl-sandbox:latest` from `scripts/build_sandbox_image.sh`.
        timeout_s, memory_mb, max_output, max_procs: override the matching `Limits` fields.
        limits: all limits at once.
        workers: containers (cells that can run at once); default two per CPU of the engine (2..64).
        preload: modules each worker imports before forking cells.
        warmup: code each worker runs once after the preload (default: `sandbox.WARMUP` for the
            preloaded modules; () for none).
        cpus: CPU share of each container.
        tmpfs_mb: size of each container's /tmp.
        python: the interpreter inside the image.
        user: uid:gid the container runs as.
    """

    def __init__(
        self,
        image: str | None = None,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        max_output: int | None = None,
        max_procs: int | None = None,
        *,
        limits: Limits | None = None,
        workers: int | None = None,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        cpus: float = 1.0,
        tmpfs_mb: int = 64,
        python: str = "python3",
        user: str = "65534:65534",
        warmup: Sequence[str] | None = None,
    ) -> None:
        lim = limits_from(
            limits, timeout_s=timeout_s, memory_mb=memory_mb, max_output=max_output, max_procs=max_procs
        )
        super().__init__(lim, workers, preload, warmup)
        self._workers_given = workers is not None
        if cpus <= 0 or tmpfs_mb <= 0:
            raise ValueError("cpus and tmpfs_mb must be positive")
        self.image = image or DEFAULT_IMAGE
        self.cpus = cpus
        self.tmpfs_mb = tmpfs_mb
        self.python = python
        self.user = user
        self.pool_id = uuid.uuid4().hex[:8]
        self._client: Any = None

    async def setup(self) -> None:
        if self._client is None:
            self._client = await asyncio.to_thread(self._connect)
        if not self._workers_given:  # the engine's CPUs (DOCKER_HOST may be another machine)
            with contextlib.suppress(Exception):
                ncpu = int((await asyncio.to_thread(self._client.info)).get("NCPU") or 0)
                if ncpu > 0:
                    self.workers = default_workers(ncpu)
        await super().setup()

    def _connect(self) -> Any:
        try:
            import docker
        except ImportError:
            raise SandboxUnavailableError("DockerSandbox needs the docker SDK: pip install 'torl[docker]'") from None
        problem = docker_available(self.image)
        if problem:
            raise SandboxUnavailableError(f"DockerSandbox unavailable: {problem}")
        client = docker.from_env(timeout=60)
        removed = remove_leftovers(client)
        if removed:
            log.info("removed %d leftover sandbox containers", removed)
        return client

    async def teardown(self) -> None:
        await super().teardown()
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.close)

    def _create(self, index: int) -> tuple[str, Any]:
        api = self._client.api
        mem = f"{int(self.limits.memory_mb) + _WORKER_MEMORY_MB}m"
        host_config = api.create_host_config(
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={self.tmpfs_mb}m,mode=1777"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=mem,
            memswap_limit=mem,
            pids_limit=self.limits.max_procs + 16,
            nano_cpus=int(self.cpus * 1e9),
            ulimits=[{"Name": "core", "Soft": 0, "Hard": 0}],
            ipc_mode="private",
            auto_remove=True,
        )
        name = f"torl-sandbox-{self.pool_id}-{index}-{uuid.uuid4().hex[:6]}"
        c = api.create_container(
            self.image,
            command=[self.python, "-I", "-c", WORKER_SOURCE],
            name=name,
            user=self.user,
            working_dir="/tmp",
            stdin_open=True,  # with detach=False: StdinOnce, so the worker sees EOF when we go away
            detach=False,
            network_disabled=True,
            labels={LABEL: _owner()},
            environment=CELL_ENV,
            host_config=host_config,
        )
        cid = c["Id"]
        try:
            raw = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            api.start(cid)
        except Exception:
            with contextlib.suppress(Exception):
                api.remove_container(cid, force=True)
            raise
        return cid, raw

    async def _spawn(self, index: int) -> WorkerConn:
        if self._client is None:
            raise WorkerError("DockerSandbox is closed")
        cid, raw = await asyncio.to_thread(self._create, index)
        conn = _ContainerConn(self._client, cid, raw)
        try:
            await conn.open()
            await conn.handshake(
                base_config(self.preload, CELL_ENV, self.warmup, tmp="/tmp/work"), self.spawn_timeout_s
            )
        except BaseException:
            await conn.kill()
            raise
        if conn.info.get("failed") and index == 0:
            log.warning("sandbox image %s could not preload %s", self.image, conn.info["failed"])
        if conn.info.get("warmup_failed") and index == 0:
            log.warning(
                "sandbox image %s: %d warm-up snippet(s) failed", self.image, conn.info["warmup_failed"]
            )
        return conn

    def container_ids(self) -> list[str]:
        """Ids of the live containers of this pool."""
        return [s.conn.id for s in self._slots if isinstance(s.conn, _ContainerConn)]
