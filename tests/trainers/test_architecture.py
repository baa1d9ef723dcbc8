"""docs/architecture.md's path, walked for real: one dataset row → trainer → engine → backend → format →
tool → observation → trajectory → reward → advantages → loss, on the tiny TIR model (transformers backend,
real sandbox, real ToRL reward), checking what crosses each hop."""

from __future__ import annotations

import os

import torch

from tests.rollout.conftest import RecordingBackend

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
PROBLEM = "What is 12 * 34 + 5?"


def test_one_row_from_the_dataset_to_the_loss(tir_model_path, tmp_path):
    from datasets import Dataset

    from torl.data import apply_format_template
    from torl.rewards import ToRLReward
    from torl.rollout import ToRLFormat, torl_prompt
    from torl.tools import LocalSandbox
    from torl.trainers import TIRGRPOConfig, TIRGRPOTrainer

    # dataset row -> prompt: the format writes it
    rows = Dataset.from_dict({"problem": [PROBLEM] * 4, "answer": ["413"] * 4, "id": ["a", "b", "c", "d"]})
    ds = apply_format_template(rows, "torl")
    assert ds[0]["prompt"] == torl_prompt(PROBLEM) and ds.column_names == ["problem", "answer", "id", "prompt"]

    seen: dict = {}

    class Probe(TIRGRPOTrainer):
        def _compute_loss(self, model, inputs):
            seen.setdefault("loss", {k: inputs[k].clone() for k in ("completion_ids", "completion_mask", "tool_mask")})
            return super()._compute_loss(model, inputs)

    args = TIRGRPOConfig(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to=[], seed=0, max_steps=1,
        per_device_train_batch_size=4, num_generations=4, max_completion_length=96, temperature=1.0,
        max_tool_calls=2, save_trajectories_steps=1, save_strategy="no", learning_rate=1e-5,
    )
    trainer = Probe(model=tir_model_path, reward_funcs=[ToRLReward()], args=args, train_dataset=ds,
                    tool=LocalSandbox(timeout_s=5, workers=1))
    rec = RecordingBackend(trainer.rollout.backend)  # engine -> backend: every request and its answer
    trainer.rollout.backend = rec
    trainer.train()
    trainer.close()
    trajs = trainer.last_trajectories
    assert len(trajs) == 4 and all(t.error is None for t in trajs)
    fmt = ToRLFormat()

    for t in trajs:
        # trainer -> engine: the prompt as the format encodes it
        assert t.prompt == torl_prompt(PROBLEM)
        # engine -> backend: each turn sends the ids so far; backend -> format: the ids come back as sampled
        for seg in (s for s in t.segments if s.kind == "model"):
            sent = t.prompt_ids + t.completion_ids[: seg.start]
            outs = [out for ids, _, out in rec.requests if ids == sent]
            assert outs and outs[0].token_ids == t.completion_ids[seg.start : seg.end]
            assert t.logprobs[seg.start : seg.end] == outs[0].logprobs and set(t.env_mask[seg.start : seg.end]) == {1}
        # format -> tool -> observation: the call is the turn's last python block; its rendered result is
        # the tool segment, masked out with logprob 0
        for rec_call in t.tool_calls:
            model_text = t.segments[rec_call.output_segment - 1].text
            assert fmt.parse_calls(model_text, stopped=True) == [rec_call.call.model_copy(update={"session": None})]
            seg = t.segments[rec_call.output_segment]
            assert seg.kind == "tool" and seg.text == fmt.render(model_text, [rec_call.call], [rec_call.result])
            assert set(t.env_mask[seg.start : seg.end]) == {0} and set(t.logprobs[seg.start : seg.end]) == {0.0}
            assert rec_call.result.duration_s > 0
        # trajectory -> reward: the reward wrote its verdict; the row's columns came along
        bd = t.reward_breakdown
        assert bd["torl"] in (1.0, -1.0) and bd["correct"] == (1.0 if bd["torl"] == 1.0 else 0.0)
        assert t.correct == (bd["torl"] == 1.0) and "pred" in t.metadata
        assert (t.metadata["answer"], t.metadata["problem"]) == ("413", PROBLEM) and t.metadata["id"] in "abcd"

    # reward -> advantages: GRPO within the group of 4 (TRL's scale_rewards="group")
    r = torch.tensor([t.reward_breakdown["torl"] for t in trajs])
    expected = (r - r.mean()) / (r.std() + 1e-4)
    assert torch.allclose(torch.tensor([t.metadata["advantage"] for t in trajs]), expected, atol=1e-4)

    # advantages -> loss: the loss sees the engine's ids and its env mask as TRL's tool mask
    loss = seen["loss"]
    for i, t in enumerate(trajs):
        n = len(t.completion_ids)
        assert loss["completion_ids"][i, :n].tolist() == t.completion_ids
        assert loss["tool_mask"][i, :n].tolist() == t.env_mask
        masked = (loss["completion_mask"][i, :n] * loss["tool_mask"][i, :n]).tolist()
        assert masked == t.env_mask  # model tokens only: tool output is in the context, out of the loss
