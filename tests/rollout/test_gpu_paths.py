"""Backend defects that only show on GPUs or with odd servers, checked on CPU.

- CUDA device of the threads that run the engine: `torch.cuda` is replaced by a per-thread stand-in (a new
  thread starts on device 0, as in CUDA), and the engine records the device it ran on. The real engine over
  the same backend is tested in test_vllm_llm.py.
- Missing logprobs from a server are NaN (TRL: no correction), never 0.0; the real server is test_server.py.
"""

from __future__ import annotations

import http.server
import json
import math
import threading
from types import SimpleNamespace

import pytest
import torch

from torl.core import Trajectory
from torl.rollout import GenerationRequest, HTTPBackend, TIRRollout
from torl.rollout.backends import TransformersBackend, VLLMSyncBackend


class FakeCuda:
    """torch.cuda as seen per thread: every thread starts on device 0 until it calls set_device."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.calls: list[tuple[str, int]] = []

    def current_device(self) -> int:
        return getattr(self.local, "device", 0)

    def set_device(self, device) -> None:
        index = device.index if isinstance(device, torch.device) else int(device)
        self.local.device = index
        self.calls.append((threading.current_thread().name, index))

    def install(self, monkeypatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", self.current_device)
        monkeypatch.setattr(torch.cuda, "set_device", self.set_device)


class DeviceRecordingEngine:
    """The parts of `vllm.LLM.llm_engine` the sync backend drives; each step records the current device."""

    def __init__(self, cuda: FakeCuda, worker_device=None) -> None:
        self.cuda = cuda
        self.model_config = SimpleNamespace(max_model_len=64, logprobs_mode="processed_logprobs")
        self.vllm_config = SimpleNamespace(
            cache_config=SimpleNamespace(enable_prefix_caching=True),
            scheduler_config=SimpleNamespace(enable_chunked_prefill=False),
        )
        if worker_device is not None:
            worker = SimpleNamespace(device=worker_device)
            self.model_executor = SimpleNamespace(driver_worker=SimpleNamespace(worker=worker))
        self.waiting: list[str] = []
        self.step_devices: list[int] = []

    def add_request(self, rid, prompt, params) -> None:
        self.waiting.append(rid)

    def step(self):
        self.step_devices.append(self.cuda.current_device())
        done, self.waiting = self.waiting, []
        lp = [{7: SimpleNamespace(logprob=-0.25)}]
        return [
            SimpleNamespace(
                request_id=r,
                finished=True,
                outputs=[SimpleNamespace(token_ids=[7], logprobs=lp, finish_reason="stop", stop_reason=None)],
            )
            for r in done
        ]

    def abort_request(self, rids) -> None:
        pass


def _fake_llm(engine):
    return SimpleNamespace(llm_engine=engine, get_tokenizer=lambda: None)


@pytest.mark.vllm  # SamplingParams
async def test_vllm_driver_thread_runs_on_the_device_current_when_built(monkeypatch):
    cuda = FakeCuda()
    cuda.install(monkeypatch)
    cuda.set_device(1)  # what accelerate does on rank 1's main thread
    engine = DeviceRecordingEngine(cuda)
    backend = VLLMSyncBackend(_fake_llm(engine), tokenizer=object())
    out = await backend.generate(GenerationRequest([1, 2, 3], max_tokens=4))
    await backend.close()
    assert out.token_ids == [7] and out.logprobs == [-0.25]
    assert engine.step_devices and set(engine.step_devices) == {1}  # not GPU 0, where a new thread starts
    assert ("torl-vllm-driver", 1) in cuda.calls and backend.device == 1


@pytest.mark.vllm
async def test_vllm_driver_thread_follows_the_engine_worker_device(monkeypatch):
    cuda = FakeCuda()
    cuda.install(monkeypatch)  # the main thread is still on 0, the engine's worker on 3
    engine = DeviceRecordingEngine(cuda, worker_device=torch.device("cuda", 3))
    backend = VLLMSyncBackend(_fake_llm(engine), tokenizer=object())
    await backend.generate(GenerationRequest([1], max_tokens=4))
    await backend.close()
    assert set(engine.step_devices) == {3}


@pytest.mark.vllm
async def test_without_cuda_no_device_is_selected(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: pytest.fail("set_device without CUDA"))
    engine = DeviceRecordingEngine(FakeCuda())
    backend = VLLMSyncBackend(_fake_llm(engine), tokenizer=object())
    assert backend.device is None
    await backend.generate(GenerationRequest([1], max_tokens=4))
    await backend.close()


async def test_transformers_worker_thread_selects_the_model_gpu(monkeypatch, tiny_model_path):
    """The transformers backend generates in a worker thread: it selects the model's GPU before anything else
    (here the model claims cuda:1; the generation itself then cannot run on a CPU build)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    cuda = FakeCuda()
    cuda.install(monkeypatch)

    class OnGpu1(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.generation_config = model.generation_config

        def parameters(self, recurse: bool = True):
            yield SimpleNamespace(device=torch.device("cuda", 1))

    backend = TransformersBackend(OnGpu1(), tok)
    with pytest.raises(Exception):  # noqa: B017 - whatever a CPU build raises for a cuda tensor
        await backend.generate(GenerationRequest([1, 2], max_tokens=2))
    assert cuda.calls and cuda.calls[0][1] == 1 and cuda.calls[0][0] != threading.main_thread().name


class _NullLogprobServer(http.server.BaseHTTPRequestHandler):
    """A /v1/completions that returns token ids with some (or all) logprobs missing."""

    def do_POST(self):  # http.server calls it by this name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["max_tokens"] == 3:
            logprobs = {"token_logprobs": [-0.5, None, -1.25]}
        else:
            logprobs = None
        choice = {
            "token_ids": [5, 6, 7][: body["max_tokens"]],
            "logprobs": logprobs,
            "finish_reason": "length",
        }
        data = json.dumps({"choices": [choice]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def null_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NullLogprobServer)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


async def test_http_missing_logprobs_are_nan(null_server, tir_tokenizer):
    backend = HTTPBackend(null_server, "m", tir_tokenizer, max_model_len=64)
    some = await backend.generate(GenerationRequest([1], max_tokens=3))
    none = await backend.generate(GenerationRequest([1], max_tokens=2))
    assert some.logprobs[0] == -0.5 and math.isnan(some.logprobs[1]) and some.logprobs[2] == -1.25
    assert len(none.logprobs) == 2 and all(math.isnan(x) for x in none.logprobs)
    # Through the engine into a trajectory, and through its JSON (null) back to NaN.
    engine = TIRRollout(backend, max_tool_calls=0, max_new_tokens=3)
    (traj,) = await engine.generate(["a prompt"])
    await backend.close()
    assert math.isnan(traj.logprobs[1]) and traj.logprobs[0] == -0.5
    back = Trajectory.from_json(traj.to_json())
    assert math.isnan(back.logprobs[1]) and back.logprobs[2] == -1.25
