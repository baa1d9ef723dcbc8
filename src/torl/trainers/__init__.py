"""TRL trainers for tool-integrated RL: `TIRGRPOTrainer` and its `TIRGRPOConfig`.

```python
from torl.trainers import TIRGRPOTrainer, TIRGRPOConfig
trainer = TIRGRPOTrainer(model=..., tool=PythonTool(DockerSandbox()), reward_funcs=[ToRLReward()],
                         args=TIRGRPOConfig(...), train_dataset=ds)
trainer.train()
```
"""

from torl.trainers.config import TIRGRPOConfig
from torl.trainers.metrics import trajectory_metrics
from torl.trainers.trainer import TIRGRPOTrainer

__all__ = ["TIRGRPOConfig", "TIRGRPOTrainer", "trajectory_metrics"]
