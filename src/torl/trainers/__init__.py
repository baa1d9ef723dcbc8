"""TRL trainers for tool-integrated RL: `TIRGRPOTrainer` and its `TIRGRPOConfig`.

```python
from torl.trainers import TIRGRPOTrainer, TIRGRPOConfig
trainer = TIRGRPOTrainer(model=..., tool=PythonTool(DockerSandbox()), reward_funcs=[ToRLReward()],
                         args=TIRGRPOConfig(...), train_dataset=ds)
trainer.train()
```
`AsyncTIRGRPOTrainer` (with `AsyncTIRGRPOConfig`) trains while the next batches are generated, with bounded
staleness and weight updates at turn boundaries.
"""

from torl.trainers.async_config import AsyncTIRGRPOConfig
from torl.trainers.async_grpo import AsyncTIRGRPOTrainer, behaviour_weights
from torl.trainers.config import TIRGRPOConfig
from torl.trainers.metrics import trajectory_metrics
from torl.trainers.trainer import TIRGRPOTrainer

__all__ = [
    "AsyncTIRGRPOConfig",
    "AsyncTIRGRPOTrainer",
    "TIRGRPOConfig",
    "TIRGRPOTrainer",
    "behaviour_weights",
    "trajectory_metrics",
]
