"""The cleanup after each cell with a Python installed under /tmp (a CI checkout's virtualenv).

bwrap bind-mounts the interpreter's prefix read-only at its own path, so when it lives under /tmp it
lies inside the sandbox's private /tmp. The worker's scratch cleanup must not walk it: it once did, after
every cell (~88,000 failing unlinks, 300-800 ms a cell). The host watches the prefix with inotify: a
folder of it opened by anyone is seen, whatever mount namespace opened it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from torl.tools import LocalSandbox
from torl.tools.local_sandbox import bwrap_works

from .conftest import LIMITS

IN_ACCESS, IN_ATTRIB, IN_OPEN = 0x001, 0x004, 0x020


class Inotify:
    """The few inotify calls the test needs (ctypes: no dependency)."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self.paths: dict[int, str] = {}

    def watch(self, path: Path, mask: int) -> None:
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        assert wd >= 0, os.strerror(ctypes.get_errno())
        self.paths[wd] = str(path)

    def events(self) -> list[str]:
        """The watched folders touched since the last call, one entry per event."""
        seen = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return seen
            pos = 0
            while pos < len(buf):
                wd, _mask, _cookie, size = struct.unpack_from("iIII", buf, pos)
                seen.append(self.paths.get(wd, "?"))
                pos += 16 + size

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def venv_under_tmp():
    """A virtualenv in a folder under /tmp, with a tree of folders inside its prefix to watch."""
    root = Path(tempfile.mkdtemp(prefix="torl-ci-checkout-", dir="/tmp"))
    try:
        venv = root / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        canary = venv / "share" / "canary"
        folders = [canary, *(canary / f"d{i}" for i in range(8))]
        for d in folders:
            d.mkdir(parents=True, exist_ok=True)
            (d / "file.txt").write_text("x")
        yield venv, folders
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(not bwrap_works(), reason="bubblewrap missing or unable to create namespaces")
async def test_cleanup_never_walks_a_python_installed_under_tmp(venv_under_tmp):
    venv, folders = venv_under_tmp
    ino = Inotify()
    try:
        for d in folders:
            ino.watch(d, IN_OPEN | IN_ACCESS | IN_ATTRIB)
        async with LocalSandbox(
            limits=LIMITS, workers=1, preload=(), python=str(venv / "bin" / "python"), isolation="bwrap"
        ) as sb:
            assert ino.events() == []  # starting the sandbox did not look inside
            # The prefix is in the sandbox, under its /tmp; cells still write to /tmp and the worker
            # still removes what they wrote.
            probe = (
                f"import os, sys\nprint(sys.prefix == {str(venv)!r}, os.path.isdir({str(folders[0])!r}))\n"
                "open('/tmp/left-behind', 'w').write('x')\nos.makedirs('/tmp/tree/a')"
            )
            r = await sb.execute(probe)
            assert (r.status, r.output) == ("ok", "True True\n"), r
            for _ in range(3):
                assert (await sb.execute("print(1)")).output == "1\n"
            r = await sb.execute("import os\nprint(sorted(os.listdir('/tmp')))")
            top = str(venv).split("/")[2]  # the folder under /tmp that leads to the bind mount
            assert r.output == f"{sorted([top, 'work'])}\n", r
            touched = ino.events()
        # Nothing opened, read or chmod-ed a folder of the interpreter's prefix.
        assert touched == [], f"the scratch cleanup walked the read-only Python prefix: {len(touched)} events"
        assert all((d / "file.txt").read_text() == "x" for d in folders)
    finally:
        ino.close()
