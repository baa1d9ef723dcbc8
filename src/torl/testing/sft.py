"""Supervised training of a tiny model on fixed transcripts (CPU, a few hundred steps)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from pathlib import Path

from torl.testing.tiny import build_tiny_model, locked
from torl.testing.transcripts import DEFAULT_TRANSCRIPTS, Transcript


def encode_transcript(tokenizer, t: Transcript) -> tuple[list[int], list[int], list[int]]:
    """Token ids of prompt and completion, segment by segment, plus a mask of model tokens (1) in the completion."""
    if isinstance(t.prompt, str):
        prompt_ids = tokenizer(t.prompt, add_special_tokens=False)["input_ids"]
    else:
        prompt_ids = list(
            tokenizer.apply_chat_template(
                t.prompt, tools=t.tools, add_generation_prompt=True, tokenize=True, return_dict=False
            )
        )
    completion, mask = [], []
    for kind, text in t.segments:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        completion += ids
        mask += [1 if kind == "model" else 0] * len(ids)
    return prompt_ids, completion, mask


def train_on_transcripts(
    model_path: str | Path,
    out_path: str | Path,
    transcripts: Sequence[Transcript],
    *,
    max_steps: int = 600,
    lr: float = 3e-3,
    seed: int = 0,
) -> int:
    """Train until greedy decoding reproduces every model segment (teacher forced); return the steps used."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    rows = [encode_transcript(tokenizer, t) for t in transcripts]
    width = max(len(p) + len(c) for p, c, _ in rows)
    pad = tokenizer.pad_token_id
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (p, c, m) in enumerate(rows):
        seq = p + c
        ids[i, : len(seq)] = torch.tensor(seq)
        attn[i, : len(seq)] = 1
        for j, (tok, keep) in enumerate(zip(c, m)):
            if keep:
                labels[i, len(p) + j] = tok
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    step = 0
    for step in range(1, max_steps + 1):
        out = model(input_ids=ids, attention_mask=attn)
        logits = out.logits[:, :-1]
        target = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0:
            with torch.no_grad():
                sel = target != -100
                pred = logits.argmax(-1)
                # Done when every model token is the argmax by a clear margin (so vLLM agrees at temperature 0).
                top2 = logits.float().topk(2, dim=-1).values
                margin = (top2[..., 0] - top2[..., 1])[sel].min().item()
                if bool((pred[sel] == target[sel]).all()) and margin > 2.0:
                    break
    else:
        raise RuntimeError(f"tiny model did not memorise the transcripts in {max_steps} steps (loss {loss.item():.4f})")
    model.eval()
    out_dir = Path(out_path)
    model.save_pretrained(out_dir)
    return step


def build_tir_model(
    path: str | Path,
    transcripts: Sequence[Transcript] | None = None,
    *,
    base: str | Path | None = None,
    overwrite: bool = False,
) -> str:
    """Build (or reuse) a tiny model that has memorised fixed tool-using transcripts.

    At temperature 0, given a transcript's prompt and the same tool outputs, it writes the transcript's
    model segments exactly: real engines then produce real code cells, deterministically.
    """
    out = Path(path)
    transcripts = list(transcripts or DEFAULT_TRANSCRIPTS)
    base_path = build_tiny_model(base or out.with_name(out.name + "-base"))  # cached: cheap when built
    # The marker holds a digest of the transcripts and the base build: a model cached from other
    # transcripts or another base is rebuilt.
    recipe = repr([(t.prompt, t.segments, t.tools) for t in transcripts])
    recipe += (Path(base_path) / ".torl-complete").read_text()
    digest = hashlib.sha256(recipe.encode()).hexdigest()
    with locked(out):
        marker = out / ".torl-complete"
        if marker.exists() and marker.read_text().strip() == digest and not overwrite:
            return str(out)
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(base_path, tmp)
        (tmp / ".torl-complete").unlink(missing_ok=True)
        train_on_transcripts(base_path, tmp, transcripts)
        (tmp / ".torl-complete").write_text(digest + "\n")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return str(out)
