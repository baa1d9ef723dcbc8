"""`make_sandbox`: the one place a kind name becomes a sandbox. Nothing is started here."""

from __future__ import annotations

import pytest

import torl.tools
from torl.errors import ConfigError, UserError
from torl.tools import (
    SANDBOX_KINDS,
    DockerSandbox,
    LocalSandbox,
    PythonTool,
    SandboxFusionSandbox,
    default_sandbox,
    make_sandbox,
)


def test_each_kind_builds_its_sandbox_with_the_options():
    local = make_sandbox("local", timeout_s=3, workers=2, preload=())
    assert type(local) is LocalSandbox and local.limits.timeout_s == 3
    assert PythonTool(local) is local  # a sandbox is the Python tool: no wrapper
    docker = make_sandbox("docker", timeout_s=4, memory_mb=300)  # built, not started: no engine needed
    assert type(docker) is DockerSandbox and (docker.limits.timeout_s, docker.limits.memory_mb) == (4, 300)
    for kind in ("fusion", "sandbox_fusion"):
        fusion = make_sandbox(kind, url="http://localhost:8080/", timeout_s=5)
        assert type(fusion) is SandboxFusionSandbox and fusion.url == "http://localhost:8080/run_code"
        assert fusion.limits.timeout_s == 5
    assert SANDBOX_KINDS == ("auto", "docker", "local", "fusion")


def test_auto_is_docker_when_it_is_there_else_local(monkeypatch):
    monkeypatch.setattr(torl.tools, "docker_available", lambda: "no Docker engine")
    assert type(make_sandbox()) is LocalSandbox
    sandbox = default_sandbox(timeout_s=2)
    assert type(sandbox) is LocalSandbox and sandbox.limits.timeout_s == 2
    monkeypatch.setattr(torl.tools, "docker_available", lambda: None)
    assert type(make_sandbox("auto")) is DockerSandbox and type(default_sandbox()) is DockerSandbox


def test_an_unknown_kind_or_a_missing_url_is_a_config_error():
    kinds = "use one of auto, docker, local, fusion"
    with pytest.raises(ConfigError, match=rf"unknown sandbox kind 'podman': {kinds}"):
        make_sandbox("podman")
    with pytest.raises(ConfigError, match=r"sandbox 'fusion' needs url="):
        make_sandbox("fusion", timeout_s=5)
    assert issubclass(ConfigError, UserError)
