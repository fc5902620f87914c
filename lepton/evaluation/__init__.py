"""Evaluation: metrics (numbers and DataFrames) and projection (map coordinates)."""
from .metrics import (accuracy, batched, confusion, label_free_scores, per_class_accuracy,
                      proxy_a_distance)

__all__ = ["accuracy", "batched", "confusion", "label_free_scores", "per_class_accuracy", "proxy_a_distance"]
