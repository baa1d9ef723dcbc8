"""Argument checking and the truncation helper (no sandbox needed)."""

from __future__ import annotations

import pytest

from torl.tools import DockerSandbox, Limits, LocalSandbox, SandboxFusionSandbox
from torl.tools.sandbox import truncate_middle


def test_limits_validation():
    with pytest.raises(ValueError, match="timeout_s"):
        Limits(timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb"):
        Limits(memory_mb=-1)
    with pytest.raises(ValueError, match="cpu_s"):
        Limits(cpu_s=0)
    with pytest.raises(ValueError, match="max_procs"):
        Limits(max_procs=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_s"):
        Limits(timeout_s=float("nan"))
    with pytest.raises(ValueError, match="workers"):
        LocalSandbox(workers=0)
    with pytest.raises(ValueError, match="isolation"):
        LocalSandbox(isolation="chroot")  # type: ignore[arg-type]
    assert LocalSandbox(timeout_s=2, limits=Limits(memory_mb=64)).limits == Limits(timeout_s=2, memory_mb=64)


def test_truncate_middle():
    assert truncate_middle("abc", 10) == ("abc", False)
    text, cut = truncate_middle("a" * 10 + "b" * 100 + "c" * 10, 20)
    assert cut and text == "a" * 10 + "\n[... 100 bytes of output truncated ...]\n" + "c" * 10


def test_other_constructors_check_arguments():
    with pytest.raises(ValueError, match="cpus"):
        DockerSandbox(cpus=0)
    with pytest.raises(ValueError, match="url"):
        SandboxFusionSandbox("localhost:8080")
    with pytest.raises(ValueError, match="max_concurrency"):
        SandboxFusionSandbox("http://localhost:8080", max_concurrency=0)


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, torl.tools; print(sorted(m for m in ('docker', 'httpx', 'numpy', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
