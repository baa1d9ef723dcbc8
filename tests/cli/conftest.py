"""CLI tests reuse the scripted engine of tests/eval (for results files made without vLLM)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
