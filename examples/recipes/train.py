"""Train a recipe: `python examples/recipes/train.py --config examples/recipes/torl_1.5b.yaml`.

The runner is `torl.trainers.recipe` (also `torl train RECIPE.yaml`): `--set key.sub=value` overrides,
`--resume [CHECKPOINT]` resumes. Launch on several GPUs with `accelerate launch`.
"""

from torl.trainers.recipe import build_dataset, build_reward, build_tool, build_trainer, load_recipe, main

__all__ = ["build_dataset", "build_reward", "build_tool", "build_trainer", "load_recipe", "main"]

if __name__ == "__main__":
    main()
