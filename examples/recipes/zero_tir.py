"""The ZERO-TIR tool format: see `torl.trainers.zero_tir` (re-exported here for the recipes)."""

from torl.trainers.zero_tir import EMPTY_HINT, MAX_CHARS, ZeroTIRFormat, register

__all__ = ["EMPTY_HINT", "MAX_CHARS", "ZeroTIRFormat", "register"]
