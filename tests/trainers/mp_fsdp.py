"""Run by test_fsdp_generation.py under torchrun: 2 CPU processes (gloo), the tiny model sharded with FSDP2,
the transformers backend generating different amounts on each rank ("copy": on `FullWeightsCopy`, the fix;
"sharded": on the sharded model itself, which hangs: the ranks' forwards are collectives)."""

import json
import os
import sys
from types import SimpleNamespace


def main(how: str, model_path: str, out: str) -> None:
    import torch
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from torl.rollout import TIRRollout
    from torl.trainers.weight_sync import FullWeightsCopy

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    tok = AutoTokenizer.from_pretrained(model_path)
    reference = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    assert type(model.lm_head.weight).__name__ == "DTensor"
    accelerator = SimpleNamespace(  # what TRL's FSDP2 parameter iteration reads
        device=torch.device("cpu"), unwrap_model=lambda m: m,
        state=SimpleNamespace(deepspeed_plugin=None, fsdp_plugin=SimpleNamespace(fsdp_version=2)),
    )
    if how == "copy":
        copy = FullWeightsCopy(model, accelerator)
        copy.refresh()
        generator = copy.model
    else:
        generator = model
    engine = TIRRollout.from_transformers(generator, tok, max_tool_calls=0, max_new_tokens=8 + 16 * rank)
    prompts = ["What is 12 * 34 + 5?", "Compute 7 * 8."][: 1 + rank]  # rank 1 generates more and longer
    trajs = engine.generate_sync(prompts, n=1 + rank, temperature=1.0, seed=rank)
    gaps = []
    for t in trajs:
        ids = torch.tensor([t.prompt_ids + t.completion_ids])
        with torch.no_grad():
            logits = reference(ids).logits[0, len(t.prompt_ids) - 1 : -1]
        ref = logits.log_softmax(-1).gather(1, ids[0, len(t.prompt_ids) :, None])[:, 0]
        gaps.append((torch.tensor(t.logprobs) - ref).abs().max().item())
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"trajectories": len(trajs), "tokens": sum(len(t.completion_ids) for t in trajs),
                   "gap": max(gaps)}, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
