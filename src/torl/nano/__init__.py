"""The nano ToRL run: a tiny model, pretrained here on synthetic arithmetic word problems, learns with
GRPO to use a Python tool where hand arithmetic fails (large numbers), on CPU in minutes.

```python
from torl.nano import NanoConfig, run
results = run(NanoConfig(output_dir="nano-run"))   # what `make nano` does
```

Parts: `tasks` (problems and ToRL-format worked solutions), `pretrain` (the cached tiny model),
`evaluate` (`evaluate_nano`: held-out accuracy, tool use, code errors), `run` (the whole job). Importing this package is
light: torch, vLLM and TRL load when a run or a pretraining starts.
"""

from torl.nano.evaluate import NanoScores, evaluate_nano, nano_table, summarize_nano
from torl.nano.pretrain import PretrainConfig, default_cache_dir, pretrain
from torl.nano.run import NanoConfig, run, train_eval_split
from torl.nano.tasks import NanoProblem, TaskConfig, make_problems, pretraining_examples, solution_segments

__all__ = [
    "NanoConfig",
    "NanoProblem",
    "NanoScores",
    "PretrainConfig",
    "TaskConfig",
    "default_cache_dir",
    "evaluate_nano",
    "make_problems",
    "nano_table",
    "pretrain",
    "pretraining_examples",
    "run",
    "solution_segments",
    "summarize_nano",
    "train_eval_split",
]
