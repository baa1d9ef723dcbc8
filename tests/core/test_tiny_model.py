import json
from pathlib import Path

import pytest

from torl.testing import TORL_TWO_CALLS, encode_transcript


def test_tiny_model_loads_in_transformers(tiny_model_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    cfg = json.loads((Path(tiny_model_path) / "config.json").read_text())
    assert cfg["model_type"] == "qwen2" and cfg["tie_word_embeddings"] is False
    assert cfg["hidden_size"] // cfg["num_attention_heads"] == 64
    ids = tok("print(12 * 34)", return_tensors="pt")["input_ids"]
    assert tok.decode(ids[0]) == "print(12 * 34)"
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape[-1] == cfg["vocab_size"] and torch.isfinite(logits).all()
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_tir_model_reproduces_transcript_in_transformers(tir_model_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tir_model_path)
    model = AutoModelForCausalLM.from_pretrained(tir_model_path)
    prompt_ids, completion, mask = encode_transcript(tok, TORL_TWO_CALLS)
    first = TORL_TWO_CALLS.model_segments[0]
    n = len(tok(first, add_special_tokens=False)["input_ids"])
    out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=n, do_sample=False)
    assert out[0, len(prompt_ids):].tolist() == completion[:n]
    assert tok.decode(completion[:n]) == first


@pytest.mark.vllm
def test_tiny_model_loads_in_vllm_and_matches_transformers(tir_model_path):
    """vLLM (CPU here) loads the test model, sees the same token ids, and greedy-decodes the transcript."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    tok = AutoTokenizer.from_pretrained(tir_model_path)
    prompt_ids, completion, _ = encode_transcript(tok, TORL_TWO_CALLS)
    llm = LLM(tir_model_path, dtype="float32", max_model_len=1024, enforce_eager=True, seed=0,
              logprobs_mode="processed_logprobs")
    try:
        assert llm.get_tokenizer()(TORL_TWO_CALLS.prompt, add_special_tokens=False)["input_ids"] == prompt_ids
        params = SamplingParams(temperature=0.0, max_tokens=64, stop=["```output"],
                                include_stop_str_in_output=True, logprobs=0)
        out = llm.generate([TokensPrompt(prompt_token_ids=prompt_ids)], params)[0].outputs[0]
        assert out.text == TORL_TWO_CALLS.model_segments[0]
        ids = list(out.token_ids)
        assert ids == completion[: len(ids)]
        sampled = [lp[t].logprob for lp, t in zip(out.logprobs, ids)]
    finally:
        del llm
    model = AutoModelForCausalLM.from_pretrained(tir_model_path, dtype=torch.float32)
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + ids])).logits[0, len(prompt_ids) - 1 : -1]
    ref = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(ids)[:, None])[:, 0]
    assert torch.allclose(torch.tensor(sampled), ref, atol=1e-4)
