"""Pretrain the nano model: a tiny Qwen2 trained from scratch on worked arithmetic problems (CPU, minutes).

The result is cached under `cache_dir/nano-<key>`, where the key hashes the whole config (generator
included), so a second run with the same config loads it at once.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torl.nano.tasks import Example, TaskConfig, pretraining_examples

COMPLETE = ".torl-complete"
FORMAT_VERSION = 2
"""Bump when the data or the training code changes what a config produces (it is part of the cache key)."""


def default_cache_dir() -> Path:
    """$TORL_CACHE/nano, else ~/.cache/torl/nano."""
    root = os.environ.get("TORL_CACHE")
    return Path(root) / "nano" if root else Path.home() / ".cache" / "torl" / "nano"


def pick_threads() -> int:
    """Torch threads for the nano run: $TORL_NANO_THREADS if set; 1 on a busy machine (load >= cores),
    where a second thread mostly spins waiting for a core (several times slower); else up to 4."""
    env = os.environ.get("TORL_NANO_THREADS")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"TORL_NANO_THREADS must be a positive integer, got {env!r}")
        return int(env)
    cores = os.cpu_count() or 1
    return 1 if os.getloadavg()[0] >= cores else min(cores, 4)


@dataclass(frozen=True)
class PretrainConfig:
    """Model size, data and optimisation of the pretraining run."""

    task: TaskConfig = field(default_factory=TaskConfig)
    num_examples: int = 20000
    num_layers: int = 2
    hidden_size: int = 256
    num_heads: int = 4
    vocab_size: int = 768
    steps: int = 1500
    batch_size: int = 16
    lr: float = 2e-3
    warmup_steps: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden_size // self.num_heads != 64 or self.hidden_size % self.num_heads:
            raise ValueError("hidden_size / num_heads must be 64 (vLLM's CPU attention needs head_dim 64)")
        for name in ("num_examples", "num_layers", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"PretrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"PretrainConfig.lr must be > 0, got {self.lr}")

    def key(self) -> str:
        """A short stable hash of the whole config (the cache key)."""
        blob = json.dumps({"format": FORMAT_VERSION, **asdict(self)}, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def encode_examples(tokenizer, examples: list[Example]) -> list[tuple[list[int], list[int]]]:
    """Token ids of prompt + solution, and labels (-100 on the prompt and on tool output), per example.

    Segments are tokenized one by one, as the rollout engine sees them (it never re-tokenizes)."""
    texts = [t for ex in examples for t in [ex.problem.prompt, *(text for _, text in ex.segments)]]
    pieces = iter(tokenizer(texts, add_special_tokens=False)["input_ids"])
    rows = []
    for ex in examples:
        ids = list(next(pieces))
        labels = [-100] * len(ids)
        for kind, _ in ex.segments:
            seg = list(next(pieces))
            ids += seg
            labels += seg if kind == "model" else [-100] * len(seg)
        rows.append((ids, labels))
    return rows


def encode_example(tokenizer, ex: Example) -> tuple[list[int], list[int]]:
    """`encode_examples` for one example."""
    return encode_examples(tokenizer, [ex])[0]


def tokenizer_corpus(examples: list[Example]) -> list[str]:
    """Texts for the BPE: prompts and solution segments."""
    out = []
    for ex in examples:
        out.append(ex.problem.prompt)
        out.extend(text for _, text in ex.segments)
    return out


def pretrain(
    cfg: PretrainConfig = PretrainConfig(),
    cache_dir: str | Path | None = None,
    *,
    log: Callable[[str], None] = print,
    overwrite: bool = False,
) -> Path:
    """Build (or load from cache) the pretrained nano model; return its directory."""
    from torl.testing.tiny import build_tiny_model, locked

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out = root / f"nano-{cfg.key()}"
    with locked(out):
        if (out / COMPLETE).exists() and not overwrite:
            log(f"[pretrain] cached model: {out}")
            return out
        examples = pretraining_examples(cfg.num_examples, cfg.seed, cfg.task)
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        base = build_tiny_model(
            tmp,
            vocab_size=cfg.vocab_size,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            num_heads=cfg.num_heads,
            num_kv_heads=max(1, cfg.num_heads // 2),
            max_positions=512,
            corpus=tokenizer_corpus(examples[:4000]),
            seed=cfg.seed,
        )
        (Path(base) / COMPLETE).unlink()
        _train(Path(base), examples, cfg, log)
        (Path(base) / "nano_config.json").write_text(json.dumps(asdict(cfg), indent=1, default=list))
        (Path(base) / COMPLETE).write_text("ok\n")
        shutil.rmtree(out, ignore_errors=True)
        Path(base).rename(out)
        tmp.with_name(tmp.name + ".lock").unlink(missing_ok=True)  # left by build_tiny_model
    log(f"[pretrain] saved {out}")
    return out


def _common_prefix(rows: list[list[int]]) -> int:
    n = min(len(r) for r in rows)
    first = rows[0]
    for r in rows[1:]:
        while n and r[:n] != first[:n]:
            n -= 1
    return n


def _train(path: Path, examples: list[Example], cfg: PretrainConfig, log: Callable[[str], None]) -> None:
    """Next-token loss on the model's tokens. Every prompt starts with the same ToRL template, so its
    keys and values are computed once per step and shared by the batch (exact, ~40% less compute)."""
    import torch

    torch.manual_seed(cfg.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(pick_threads())
    try:
        _fit(path, examples, cfg, log)
    finally:
        torch.set_num_threads(threads)


def _fit(path: Path, examples: list[Example], cfg: PretrainConfig, log: Callable[[str], None]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rng = random.Random(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    rows = encode_examples(tokenizer, examples)
    shared = _common_prefix([ids for ids, _ in rows]) - 1  # keep >= 1 token per row after the prefix
    prefix = torch.tensor([rows[0][0][:shared]])
    longest = max(len(ids) for ids, _ in rows)
    log(
        f"[pretrain] {len(rows)} examples, longest {longest} tokens ({shared} shared), "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, {cfg.steps} steps of {cfg.batch_size}, "
        f"{torch.get_num_threads()} threads"
    )
    pad = tokenizer.pad_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))

    model.train()
    order: list[int] = []
    t0 = time.time()
    ema = None
    for step in range(cfg.steps):
        if len(order) < cfg.batch_size:
            order = list(range(len(rows)))
            rng.shuffle(order)
        batch = [rows[order.pop()] for _ in range(cfg.batch_size)]
        width = max(len(ids) for ids, _ in batch) - shared
        # Right padding and no attention mask: causal attention never looks at the pads that follow.
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for i, (x, y) in enumerate(batch):
            ids[i, : len(x) - shared] = torch.tensor(x[shared:])
            labels[i, : len(y) - shared] = torch.tensor(y[shared:])
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        cache = model.model(input_ids=prefix, use_cache=True).past_key_values
        for layer in cache.layers:
            layer.keys = layer.keys.expand(len(batch), -1, -1, -1)
            layer.values = layer.values.expand(len(batch), -1, -1, -1)
        logits = model(input_ids=ids, past_key_values=cache).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100
        )
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.9 * ema + 0.1 * loss.item()
        if (step + 1) % 100 == 0 or step + 1 == cfg.steps:
            log(f"[pretrain] step {step + 1}/{cfg.steps}  loss {ema:.4f}  {time.time() - t0:.0f}s")
    model.eval()
    model.save_pretrained(path)
