"""`AsyncTIRGRPOTrainer`: tool-integrated GRPO with rollouts that run ahead of training.

`TIRGRPOTrainer` waits for the slowest trajectory of every batch, and the engine idles while it trains.
Here the engine keeps generating the next batches while the current one trains, at most `max_staleness`
policy versions ahead (`RunAhead`); new weights reach the engine at turn boundaries (`VersionedBackend`):
a trajectory waiting on its sandbox just continues under the new weights, a turn in flight finishes under
the old ones or is regenerated. Every model segment records its version. The loss corrects for the lag
with AReaL's decoupled objective (default) or TRL's importance-sampling correction. See docs/async.md.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from accelerate.utils import gather_object

from torl.core import Prompt, Trajectory
from torl.rollout.versioned import VersionedBackend
from torl.trainers.async_config import AsyncTIRGRPOConfig
from torl.trainers.run_ahead import Lookahead, RunAhead, TakenBatch
from torl.trainers.trainer import TIRGRPOTrainer

__all__ = ["AsyncTIRGRPOConfig", "AsyncTIRGRPOTrainer", "behaviour_weights"]

_SUMMED = ("dropped_stale", "queue_depth", "in_flight", "aborted_turns", "sync_aborted_turns",
           "sync_finished_turns")


def behaviour_weights(proximal: torch.Tensor, behaviour: torch.Tensor, mask: torch.Tensor,
                      cap: float | None) -> torch.Tensor:
    """AReaL's behaviour importance weight per token: pi_prox / pi_behav = exp(proximal - behaviour), zero
    outside `mask` (tool tokens, padding) and where it exceeds `cap`. NaN behaviour logprobs count as 1."""
    diff = torch.nan_to_num(proximal.float() - behaviour.float(), nan=0.0).clamp(max=20.0)
    w = torch.exp(diff)
    keep = mask.bool()
    if cap is not None:
        keep = keep & (w <= cap)
    return torch.where(keep, w, torch.zeros_like(w))


class AsyncTIRGRPOTrainer(TIRGRPOTrainer):
    """`TIRGRPOTrainer` whose rollouts run ahead of training, with bounded staleness (see docs/async.md).

    ```python
    trainer = AsyncTIRGRPOTrainer(model=..., tool=PythonTool(LocalSandbox()), reward_funcs=[ToRLReward()],
                                  args=AsyncTIRGRPOConfig(..., max_staleness=1), train_dataset=ds)
    trainer.train()
    ```

    Backends: the colocated vLLM engine (`use_vllm=True, vllm_mode="colocate"`; weights reloaded while it is
    paused between turns), TRL's server mode (`vllm_mode="server"`, NCCL transfer), `vllm serve` through
    `rollout=TIRRollout.from_server(...)` with `weight_sync=FolderWeightSync(...)` (reload from a folder; works
    on CPU), or the transformers backend (`use_vllm=False`: generation runs on a copy of the policy).

    Args:
        weight_sync: an object with `load(model)` that puts the policy's weights into the engine (e.g.
            `torl.rollout.FolderWeightSync`); default: the trainer's own engine sync.
        Others as `TIRGRPOTrainer`; `args` must be an `AsyncTIRGRPOConfig`.
    """

    def __init__(self, model: Any, reward_funcs: Any = None, args: AsyncTIRGRPOConfig | None = None,
                 train_dataset: Any = None, eval_dataset: Any = None, processing_class: Any = None, *,
                 weight_sync: Any = None, **kwargs: Any) -> None:
        if args is None:
            name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "model")
            args = AsyncTIRGRPOConfig(output_dir=f"{str(name).rstrip('/').split('/')[-1]}-TIR-GRPO-async")
        if not isinstance(args, AsyncTIRGRPOConfig):
            raise TypeError(f"args must be an AsyncTIRGRPOConfig, got {type(args).__name__}")
        if args.use_vllm and args.vllm_enable_sleep_mode:
            raise ValueError("vllm_enable_sleep_mode puts the engine to sleep while the trainer trains, which is when "
                             "asynchronous rollouts run: turn it off")
        if args.steps_per_generation * args.num_iterations != args.gradient_accumulation_steps:
            raise ValueError("asynchronous training needs one generation batch per optimizer step: "
                             "steps_per_generation * num_iterations == gradient_accumulation_steps (got "
                             f"{args.steps_per_generation} * {args.num_iterations} != "
                             f"{args.gradient_accumulation_steps})")
        rows = args.per_device_train_batch_size * args.steps_per_generation
        if rows % args.num_generations:
            raise ValueError(f"each process' generation batch ({rows} rows) must hold whole GRPO groups of "
                             f"{args.num_generations}: groups are rolled out and taken as units")
        if weight_sync is not None and not callable(getattr(weight_sync, "load", None)):
            raise TypeError("weight_sync must have a load(model) method (e.g. torl.rollout.FolderWeightSync)")
        self._weight_sync = weight_sync
        self._gen_model: Any = None
        with warnings.catch_warnings():
            if weight_sync is not None:  # it does push weights to the servers
                warnings.filterwarnings("ignore", message="rollout= generates on vLLM servers")
            super().__init__(model, reward_funcs, args, train_dataset, eval_dataset, processing_class, **kwargs)
        rollout = self._rollout
        backend = getattr(rollout, "backend", None)
        if backend is None or not hasattr(rollout, "_run"):
            raise TypeError("asynchronous training needs a torl TIRRollout (its backend reports versions and "
                            f"pauses at turn boundaries), got {type(rollout).__name__}")
        if not isinstance(backend, VersionedBackend):
            rollout.backend = VersionedBackend(backend, inflight=args.inflight_turns,
                                               drain_timeout_s=args.weight_sync_timeout_s)
        self._versioned: VersionedBackend = rollout.backend
        if args.off_policy_correction == "decoupled":
            self.vllm_importance_sampling_correction = False  # the behaviour weight replaces it
        if not self.use_vllm and weight_sync is None and self._gen_model is None:
            warnings.warn("the rollout's engine gets no weights from this trainer (use_vllm=False and no "
                          "weight_sync=): it samples from a stale policy", stacklevel=2)
        self._run_ahead: RunAhead | None = None
        self._lookahead: Lookahead | None = None
        self._taken: TakenBatch | None = None
        self._published: int | None = None
        self._fed_steps = 0
        self._sync_stats: dict[str, float] = {}

    # ----- the engine -----

    def _build_rollout(self) -> Any:
        if self.use_vllm:
            return super()._build_rollout()
        from torl.rollout.engine import TIRRollout

        # Generation runs while the policy trains: it gets its own copy, refreshed at each publish.
        gen = copy.deepcopy(self.accelerator.unwrap_model(self.model)).eval().requires_grad_(False)
        # TRL patches the policy's forward with a closure over the policy itself: the copy must run its own.
        gen.__dict__.pop("forward", None)
        if getattr(gen, "is_gradient_checkpointing", False):
            gen.gradient_checkpointing_disable()
        gen.config.use_cache = True  # the trainer turned it off for checkpointing; generate needs its KV cache
        self._gen_model = gen
        return TIRRollout.from_transformers(self._gen_model, self.processing_class, **self._engine_kwargs())

    def _check_rollout_model(self) -> None:
        if self._gen_model is None:
            super()._check_rollout_model()

    @property
    def policy_version(self) -> int | None:
        """The policy version the engine holds (the trainer step whose weights were last published)."""
        return self._published

    def _publish_weights(self) -> None:
        """Put the current weights into the engine at the turn boundary (once per step)."""
        step = self.state.global_step
        if self._published == step:
            return
        run = self._rollout._run
        t0 = time.perf_counter()
        drain = run(self._versioned.pause())
        try:
            self._load_weights()
        except BaseException:
            run(self._versioned.resume(None))
            raise
        run(self._versioned.resume(step))
        self._published = step
        self._last_loaded_step = step  # TRL's own sync (in `_generate`) is done
        if self._run_ahead is not None:
            self._run_ahead.publish(step)
        self._sync_stats = {"weight_sync_s": time.perf_counter() - t0, "sync_drain_s": drain.drain_s,
                            "sync_finished_turns": float(drain.finished_turns),
                            "sync_aborted_turns": float(drain.aborted_turns)}

    @torch.no_grad()
    def _load_weights(self) -> None:
        unwrapped = self.accelerator.unwrap_model(self.model)
        if self._weight_sync is not None:
            self._weight_sync.load(unwrapped)
        elif self.use_vllm:
            self.vllm_generation.sync_weights()
        elif self._gen_model is not None:
            for dst, src in zip(self._gen_model.parameters(), unwrapped.parameters(), strict=True):
                dst.copy_(src.detach())

    # ----- the producer -----

    def _producer(self) -> RunAhead:
        if self._run_ahead is None:
            a = self.args
            self._fed_steps = self.state.global_step
            self._run_ahead = RunAhead(
                self._rollout, group_size=self.num_generations,
                groups_per_batch=a.per_device_train_batch_size * a.steps_per_generation // self.num_generations,
                max_staleness=a.max_staleness, stale=a.stale_trajectories,
                sampling=lambda step: self._rollout_sampling(step, "train"), start_step=self.state.global_step,
            )
            if self._published is not None:
                self._run_ahead.publish(self._published)
        return self._run_ahead

    def _feed(self, rows: list[dict]) -> None:
        self._producer().feed(rows, self._fed_steps)
        self._fed_steps += 1

    def _stop_producer(self) -> None:
        producer, self._run_ahead, self._lookahead, self._taken = self._run_ahead, None, None, None
        if producer is not None:
            producer.stop()

    def get_batch_samples(self, epoch_iterator: Iterator, num_batches: int, device: Any) -> tuple[list, Any]:
        """HF's batch fetch, reading ahead: the rows of the next `max_staleness` steps go to the producer now.
        (The batches returned only pace the loop: each step trains on the producer's next ready groups.)"""
        self._producer()
        if self._lookahead is None or self._lookahead.iterator is not epoch_iterator:
            every = self.args.steps_per_generation * self.num_iterations
            self._lookahead = Lookahead(epoch_iterator, every, self._feed)
        batches = self._lookahead.take(num_batches)
        self._lookahead.fill(self.args.max_staleness)
        return batches, self._get_num_items_in_batch(batches, device)

    def _refill(self) -> bool:
        return self._lookahead is not None and self._lookahead.fill_one()

    def train(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().train(*args, **kwargs)
        finally:
            self._stop_producer()  # also on Ctrl-C or an error: no rollout keeps running

    def close(self) -> None:
        """Stop the producer, then release the tool and the engine (as `TIRGRPOTrainer.close`)."""
        self._stop_producer()
        super().close()

    # ----- one step -----

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        mode = "train" if self.model.training else "eval"
        self._publish_weights()
        taken = None
        if mode == "train" and self._run_ahead is not None:
            taken = self._run_ahead.take(self.state.global_step, self._refill)
            if len(taken.rows) != len(inputs):
                raise RuntimeError(f"the producer gave {len(taken.rows)} rows for a batch of {len(inputs)}")
            inputs[:] = [dict(r) for r in taken.rows]  # this step trains on the groups that are ready
            self._taken = taken
        output = super()._generate_and_score_completions(inputs)
        if mode == "train":
            if self.args.off_policy_correction == "decoupled":
                self._apply_behaviour_weights(output)
            if taken is not None:
                self._log_async({**taken.stats, **self._sync_stats})
        return output

    def _generate_trajectories(self, prompts: list[Prompt], mode: str) -> list[Trajectory]:
        taken, self._taken = self._taken, None
        if mode != "train" or taken is None:
            return super()._generate_trajectories(prompts, mode)
        trajs = taken.trajectories
        if [t.prompt for t in trajs] != list(prompts):
            raise RuntimeError("the producer's trajectories do not match the batch's prompts")
        step = self.state.global_step
        for i, t in enumerate(trajs):
            t.metadata.update(prompt_index=i, step=step, mode=mode)
            if t.oldest_version is not None:
                t.metadata["staleness"] = step - t.oldest_version
        return trajs

    def _apply_behaviour_weights(self, output: dict[str, Any]) -> None:
        """The decoupled objective: the PPO ratio is taken against the proximal policy (the trainer's weights
        now, recomputed here when TRL did not), and each token's advantage is scaled by its capped behaviour
        weight pi_prox / pi_behav. For every TRL loss that equals weighting the per-token loss (w >= 0)."""
        behaviour = output.get("sampling_per_token_logps")
        if behaviour is None:
            return
        prox = output.get("old_per_token_logps")
        if prox is None:
            prox = output["old_per_token_logps"] = self._proximal_logps(output)
        mask = output["completion_mask"]
        if "tool_mask" in output:
            mask = mask * output["tool_mask"]
        w = behaviour_weights(prox, behaviour, mask, self.args.behaviour_weight_cap)
        adv = output["advantages"]
        output["advantages"] = (adv.unsqueeze(1) if adv.dim() == 1 else adv) * w.to(adv.dtype)
        m = mask.bool()
        n = max(int(m.sum()), 1)
        capped = (m & (w == 0)).sum().item()
        self._metrics["train"]["tir/behaviour_weight_mean"].append(float(w[m].sum().item() / n))
        self._metrics["train"]["tir/behaviour_capped_frac"].append(capped / n)

    def _proximal_logps(self, output: dict[str, Any]) -> torch.Tensor:
        from trl.models.utils import disable_gradient_checkpointing

        ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
        att = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
        with torch.no_grad(), disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
            logps, _, _ = self._get_per_token_logps_and_entropies(
                self.model, ids, att, output["completion_ids"].size(1),
                batch_size=self.args.per_device_train_batch_size,
            )
        return logps

    def _log_async(self, stats: dict[str, float]) -> None:
        everyone = gather_object([stats])
        for key in stats:
            vals = [s[key] for s in everyone if key in s and not math.isnan(s[key])]
            if not vals:
                continue
            if key.endswith("_max"):
                value = max(vals)
            elif key in _SUMMED:
                value = sum(vals)
            else:
                value = sum(vals) / len(vals)
            self._metrics["train"][f"tir/{key}"].append(value)
