"""Run by test_distributed.py under torchrun: 2 CPU processes (gloo), 2 GRPO steps in one generation mode
("transformers", "colocate" or "server URL"). Every rollout records how far the sampled logprobs are from a
forward pass of the model being trained (fresh) and of the initial model (stale), and when it started.

Server mode has no NCCL on CPU: the one NCCL piece, TRL's weight stream, is replaced by the same tensors
written to disk and loaded by the server (`reload_weights` over vLLM's /collective_rpc). It sleeps first,
so that a rank that did not wait for the push would certainly be generating already.
"""

import json
import os
import sys
import time

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

PUSH_DELAY_S = 3.0


def _fake_nccl(out: str) -> None:
    import httpx
    from safetensors.torch import save_file
    from trl.generation.vllm_client import VLLMClient

    pushes = []

    def init_communicator(self, device=0):  # NCCL rendezvous: nothing to open on CPU
        self.communicator = "disk"

    def update_named_params(self, metadata, named_params):
        time.sleep(PUSH_DELAY_S)
        folder = os.path.join(out, f"push{len(pushes)}")
        os.makedirs(folder, exist_ok=True)
        tensors = {name: t.detach().cpu().contiguous().clone() for name, t in named_params}
        assert [m[0] for m in metadata] == list(tensors), "metadata and stream disagree"
        save_file(tensors, os.path.join(folder, "model.safetensors"))
        r = httpx.post(
            f"{self.base_url}/collective_rpc",
            timeout=300,
            json={"method": "reload_weights", "kwargs": {"weights_path": folder}},
        )
        r.raise_for_status()
        pushes.append(time.time())
        with open(os.path.join(out, "pushes.json"), "w") as f:
            json.dump(pushes, f)

    VLLMClient.init_communicator = init_communicator
    VLLMClient.update_named_params = update_named_params


def _logprobs(model, prompt_ids, completion_ids):
    import torch

    ids = torch.tensor([list(prompt_ids) + list(completion_ids)])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].float()
    return logits.log_softmax(-1).gather(1, ids[0, len(prompt_ids) :, None])[:, 0]


def _gap(model, out) -> float:
    import torch

    gaps = []
    for p, c, lp, m in zip(
        out["prompt_ids"], out["completion_ids"], out["logprobs"], out["env_mask"], strict=True
    ):
        ref = _logprobs(model, p, c)
        keep = torch.tensor(m, dtype=torch.bool)
        gaps.append((torch.tensor(lp)[keep] - ref[keep]).abs().max().item() if keep.any() else 0.0)
    return max(gaps)


def main(mode: str, model_path: str, out: str, server_url: str | None = None) -> None:
    from datasets import Dataset

    from torl.data import torl_prompt
    from torl.trainers import TIRGRPOConfig, TIRGRPOTrainer

    extra: dict = {}
    if mode == "colocate":
        extra = {"use_vllm": True, "vllm_mode": "colocate", "vllm_max_model_length": 512}
    elif mode == "server":
        _fake_nccl(out)
        extra = {"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": server_url}

    rank = int(os.environ.get("RANK", "0"))

    def reward(completions, **kw):  # all different, so that every step moves the weights
        return [float(10 * rank + i) for i in range(len(completions))]

    ds = Dataset.from_dict(
        {"prompt": [torl_prompt("What is 12 * 34 + 5?"), torl_prompt("What is 7 * 8?")] * 2}
    )
    args = TIRGRPOConfig(
        output_dir=out,
        report_to=[],
        logging_steps=1,
        seed=0,
        save_strategy="no",
        save_trajectories_steps=0,
        per_device_train_batch_size=2,
        num_generations=2,
        max_steps=2,
        learning_rate=1e-2,
        max_completion_length=24,
        max_tool_calls=0,
        temperature=1.0,
        **extra,
    )
    trainer = TIRGRPOTrainer(model=model_path, reward_funcs=[reward], args=args, train_dataset=ds)
    from transformers import AutoModelForCausalLM

    policy = trainer.accelerator.unwrap_model(trainer.model)
    initial = AutoModelForCausalLM.from_pretrained(model_path, dtype=policy.dtype).eval()
    rollout_func = trainer.rollout_func  # TRL calls it after its weight sync
    records = []

    def spy(prompts, t):
        started = time.time()
        result = rollout_func(prompts, t)
        records.append(
            {
                "step": trainer.state.global_step,
                "started": started,
                "fresh": _gap(policy, result),
                "stale": _gap(initial, result),
            }
        )
        return result

    trainer.rollout_func = spy
    trainer.train()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"world": trainer.accelerator.num_processes, "rollouts": records}, f)
    trainer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
