"""The nano ToRL run: a tiny model, pretrained here on synthetic arithmetic word problems, learns with
GRPO to use a Python tool where hand arithmetic fails (large numbers), on CPU in minutes.

```python
from torl.nano import NanoConfig, run
results = run(NanoConfig(output_dir="nano-run"))   # what `make nano` does
```

Parts: `tasks` (problems and ToRL-format worked solutions), `pretrain` (the cached tiny model),
`evaluate` (held-out accuracy, tool use, code errors), `run` (the whole job). Importing this package is
light: torch, vLLM and TRL load when a run or a pretraining starts.
"""

from torl.nano.evaluate import Scores, evaluate, format_table, summarize
from torl.nano.pretrain import PretrainConfig, default_cache_dir, pretrain
from torl.nano.run import NanoConfig, run, train_eval_split
from torl.nano.tasks import Problem, TaskConfig, make_problems, pretraining_examples, solution_segments

__all__ = [
    "NanoConfig",
    "PretrainConfig",
    "Problem",
    "Scores",
    "TaskConfig",
    "default_cache_dir",
    "evaluate",
    "format_table",
    "make_problems",
    "pretrain",
    "pretraining_examples",
    "run",
    "solution_segments",
    "summarize",
    "train_eval_split",
]
