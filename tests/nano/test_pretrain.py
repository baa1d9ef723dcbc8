"""Pretraining the nano model: what the loss sees, the shared-prefix trick, and the cache."""

from __future__ import annotations

import pytest

from torl.nano.pretrain import PretrainConfig, _common_prefix, encode_example, pretrain
from torl.nano.tasks import TaskConfig, pretraining_examples

TINY = PretrainConfig(num_examples=300, steps=4, batch_size=8, vocab_size=400, warmup_steps=2)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("nano-cache")
    logs: list[str] = []
    return root, pretrain(TINY, root, log=logs.append), logs


def test_labels_cover_only_model_text(tiny_model):
    from transformers import AutoTokenizer

    _, path, _ = tiny_model
    tok = AutoTokenizer.from_pretrained(path)
    ex = next(e for e in pretraining_examples(200, seed=0) if e.style == "buggy_tool")
    ids, labels = encode_example(tok, ex)
    assert len(ids) == len(labels)
    assert tok.decode(ids) == ex.problem.prompt + "".join(t for _, t in ex.segments)
    learned = tok.decode([i for i, y in zip(ids, labels) if y != -100])
    assert learned == "".join(t for k, t in ex.segments if k == "model")
    assert "NameError" not in learned and "Assistant" not in learned


def test_prompts_share_the_template_prefix(tiny_model):
    from transformers import AutoTokenizer

    _, path, _ = tiny_model
    tok = AutoTokenizer.from_pretrained(path)
    rows = [encode_example(tok, e)[0] for e in pretraining_examples(50, seed=2)]
    n = _common_prefix(rows)
    assert tok.decode(rows[0][:n]).startswith("A conversation between User and Assistant.")
    assert 20 < n < min(len(r) for r in rows)


def test_shared_prefix_loss_is_exact(tiny_model):
    """The training forward (template keys/values computed once, expanded) equals the plain forward."""
    import torch
    from transformers import AutoModelForCausalLM

    _, path, _ = tiny_model
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 300, (3, 20), generator=g)
    x[:, :8] = x[0, :8]
    full = model(input_ids=x).logits[:, 8:]
    cache = model.model(input_ids=x[:1, :8], use_cache=True).past_key_values
    for layer in cache.layers:
        layer.keys = layer.keys.expand(3, -1, -1, -1)
        layer.values = layer.values.expand(3, -1, -1, -1)
    split = model(input_ids=x[:, 8:], past_key_values=cache).logits
    assert torch.allclose(full, split, atol=1e-4)


def test_cache_is_keyed_by_config(tiny_model):
    root, path, logs = tiny_model
    assert (path / ".torl-complete").exists() and path.name == f"nano-{TINY.key()}"
    assert any("step 4/4" in line for line in logs)
    again: list[str] = []
    assert pretrain(TINY, root, log=again.append) == path
    assert again and "cached" in again[0]
    other = PretrainConfig(**{**TINY.__dict__, "task": TaskConfig(tool_share=0.5)})
    assert other.key() != TINY.key()
    assert PretrainConfig(**{**TINY.__dict__, "seed": 1}).key() != TINY.key()


@pytest.mark.parametrize("kw", [{"hidden_size": 200}, {"steps": 0}, {"lr": 0.0}, {"num_heads": 2}])
def test_bad_config_is_refused(kw):
    with pytest.raises(ValueError):
        PretrainConfig(**kw)


def test_examples_are_seeded():
    a = [e.segments for e in pretraining_examples(50, seed=0)]
    assert a == [e.segments for e in pretraining_examples(50, seed=0)]
    assert a != [e.segments for e in pretraining_examples(50, seed=1)]
