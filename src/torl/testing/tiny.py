"""Tiny Qwen2 models built on the fly, for tests and CPU demos (no Hugging Face hub needed)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import random
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

# Qwen2's pre-tokenizer regex (transformers' Qwen2Tokenizer). We train with exactly this split so that
# the tokenizer gives the same ids whether it is loaded as Qwen2Tokenizer (what AutoTokenizer picks from
# a qwen2 config.json, and what vLLM loads) or from tokenizer.json.
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
EOS = "<|endoftext|>"

# ChatML with Qwen2.5-style tool calls (<tool_call> JSON, tool results as <tool_response>).
CHAT_TEMPLATE = (
    "{%- if tools %}{{ '<|im_start|>system\\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{%- else %}{{ 'You are a helpful assistant.' }}"
    "{%- endif %}{{ '\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{%- for tool in tools %}{{ '\\n' }}{{ tool | tojson }}{%- endfor %}"
    "{{ '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n' }}"
    "{%- elif messages[0]['role'] == 'system' %}{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}"
    "{%- elif message['role'] == 'tool' %}"
    "{%- if loop.index0 == 0 or messages[loop.index0 - 1]['role'] != 'tool' %}{{ '<|im_start|>user' }}{%- endif %}"
    "{{ '\\n<tool_response>\\n' + message['content'] + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1]['role'] != 'tool' %}{{ '<|im_end|>\\n' }}{%- endif %}"
    "{%- else %}{{ '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') }}"
    "{%- if message.get('tool_calls') %}{%- for tc in message['tool_calls'] %}"
    "{%- set f = tc['function'] if tc.get('function') else tc %}"
    "{%- if message['content'] or not loop.first %}{{ '\\n' }}{%- endif %}"
    "{{ '<tool_call>\\n{\\\"name\\\": \\\"' + f['name'] + '\\\", \\\"arguments\\\": ' }}"
    "{{ f['arguments'] if f['arguments'] is string else f['arguments'] | tojson }}{{ '}\\n</tool_call>' }}"
    "{%- endfor %}{%- endif %}{{ '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _synthetic_corpus(n: int = 3000, seed: int = 0) -> list[str]:
    """Text in the shape tests and demos use: ToRL prompts, arithmetic, Python cells, outputs, tags."""
    from torl.testing.transcripts import corpus_seed_texts

    rng = random.Random(seed)
    words = (
        "the answer is let me compute it with python so we find check again number sum product total "
        "what how many each of and a an to in for is are was were have has problem solve step first then "
        "finally because therefore value result print import sympy numpy def return range len int float "
        "question user assistant conversation reasoning programs final within boxed output code interpreter "
        "apples books cost dollars more less than times plus minus divided by equal"
    ).split()
    ops = ["+", "-", "*", "//", "%"]
    texts = list(corpus_seed_texts())
    for _ in range(n):
        a, b = rng.randint(0, 99999), rng.randint(0, 999)
        op = rng.choice(ops)
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14)))
        kind = rng.random()
        if kind < 0.3:
            texts.append(f"{sentence.capitalize()}.\n```python\nprint({a} {op} {b})\n```\n```output\n{a + b}\n```\n")
        elif kind < 0.5:
            texts.append(f"<code>\nx = {a} {op} {b}\nprint(x)\n</code>\n<interpreter>\n{a * b}\n</interpreter>\n")
        elif kind < 0.7:
            texts.append(f"What is {a} {op} {b}? {sentence}. The answer is \\boxed{{{a - b}}}.")
        else:
            texts.append(f"{sentence} {a} {op} {b} = {a + b}\n")
    return texts


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive file lock beside `path`, so parallel test processes build a cached model once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024):
    """Train a byte-level BPE with Qwen2's pre-tokenizer; return a transformers `Qwen2Tokenizer`."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    spec = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in spec["merges"]]
    qtok = Qwen2Tokenizer(vocab=spec["vocab"], merges=merges, eos_token=EOS, pad_token=EOS, unk_token=EOS)
    qtok.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    qtok.chat_template = CHAT_TEMPLATE
    return qtok


def build_tiny_model(
    path: str | Path,
    *,
    vocab_size: int = 1024,
    hidden_size: int = 256,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    max_positions: int = 4096,
    corpus: Iterable[str] | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> str:
    """Build (or reuse) a tiny random Qwen2 model with a byte-level BPE tokenizer and chat template.

    The directory loads in transformers and in vLLM (head_dim = hidden_size / num_heads must be 64 for
    vLLM's CPU attention). It is cached: an existing complete build at `path` is reused. Returns the path.
    """
    out = Path(path)
    texts = list(corpus) if corpus is not None else _synthetic_corpus(seed=seed)
    key = fingerprint(texts, vocab_size, hidden_size, num_layers, num_heads, num_kv_heads, max_positions, seed)
    with locked(out):
        if is_built(out, key) and not overwrite:
            return str(out)
        _build(out, vocab_size, hidden_size, num_layers, num_heads, num_kv_heads, max_positions, texts, seed, key)
    return str(out)


def fingerprint(*parts: object) -> str:
    """A short hash of everything a cached build depends on (so a changed recipe rebuilds)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def is_built(path: Path, key: str) -> bool:
    marker = path / ".torl-complete"
    return marker.exists() and marker.read_text().strip() == key


def _build(out: Path, vocab_size, hidden_size, num_layers, num_heads, num_kv_heads, max_positions, texts, seed, key) -> None:
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    shutil.rmtree(out, ignore_errors=True)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    tokenizer = train_tokenizer(texts, vocab_size)
    n_vocab = (len(tokenizer) + 63) // 64 * 64
    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    config = Qwen2Config(
        vocab_size=n_vocab,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=max_positions,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        dtype="float32",
    )
    # The config goes first: AutoTokenizer picks its class from config.json.
    config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=eos_id, bos_token_id=eos_id)
    model.save_pretrained(tmp)

    reloaded = AutoTokenizer.from_pretrained(tmp)
    probe = "A conversation: ```python\nprint(12 * 34)\n```\n```output\n408\n``` \\boxed{408}"
    if reloaded(probe)["input_ids"] != tokenizer(probe)["input_ids"]:
        raise RuntimeError("reloaded tokenizer disagrees with the trained one; check the pre-tokenizer")
    (tmp / ".torl-complete").write_text(key + "\n")
    tmp.rename(out)
