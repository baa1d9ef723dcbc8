"""Helpers for tests and CPU demos: tiny models built on the fly, fixed tool-using transcripts."""

from torl.testing.sft import build_tir_model, encode_transcript, train_on_transcripts
from torl.testing.tiny import CHAT_TEMPLATE, build_tiny_model, train_tokenizer
from torl.testing.tools import WrappingTool
from torl.testing.transcripts import DEFAULT_TRANSCRIPTS, TORL_PROMPT_TEMPLATE, TORL_TWO_CALLS, Transcript

__all__ = [
    "CHAT_TEMPLATE",
    "DEFAULT_TRANSCRIPTS",
    "TORL_PROMPT_TEMPLATE",
    "TORL_TWO_CALLS",
    "Transcript",
    "WrappingTool",
    "build_tiny_model",
    "build_tir_model",
    "encode_transcript",
    "train_on_transcripts",
    "train_tokenizer",
]
