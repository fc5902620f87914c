"""Transfer strategies beyond one source and one target: few-shot evaluation of an encoder.

The strategy stages themselves are methods in the one registry (``ssl``, ``multitask``,
``maml``, ``reptile``; :mod:`lepton.methods`); :mod:`lepton.pipeline` chains them.
"""
from .fewshot import draw_seeds, evaluate_few_shot, finetune_accuracy, linear_probe_accuracy, mean_std

__all__ = ["draw_seeds", "evaluate_few_shot", "finetune_accuracy", "linear_probe_accuracy", "mean_std"]
