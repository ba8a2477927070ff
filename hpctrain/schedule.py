"""The learning rate at each step: linear scaling for large global batches, linear warm-up.

Linear scaling (Goyal et al.): a global batch G trained with the lr meant for a batch B uses
lr × G / B, where B is --batch-size; warm-up ramps from lr/warmup to the target over the first
`warmup_steps` steps, which keeps the first large-batch steps stable.
"""


class LearningRate:
    def __init__(self, lr: float, scaling: str, global_batch: int, reference_batch: int,
                 warmup_steps: int):
        scale = global_batch / reference_batch if scaling == "linear" else 1.0
        self.target = lr * scale
        self.warmup_steps = warmup_steps

    def at(self, step: int) -> float:
        """The lr of step `step` (0-based)."""
        warm = self.warmup_steps
        return self.target * min(1.0, (step + 1) / warm) if warm else self.target
