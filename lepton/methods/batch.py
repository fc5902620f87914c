"""The data streams a method can declare (``Method.needs``) and the :class:`Batch` the loop serves."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import List, Optional, Tuple

import torch

#: The data streams a method can declare (``Method.needs``) and the loop serves.
SOURCE = "source"            # labelled source batches, one per source domain
TARGET = "target"            # unlabelled target batches
TARGET_FEW = "target-few"    # k labelled target examples per class (few-shot fine-tuning)
TARGET_ALL = "target-all"    # the whole labelled target training split (oracle only)
STREAMS = (SOURCE, TARGET, TARGET_FEW, TARGET_ALL)


@dataclass
class Batch:
    """One step's data, exactly the streams the method declared in ``Method.needs``.

    Attributes
    ----------
    sources : list of (str, torch.Tensor, torch.Tensor)
        ``(domain name, x (B_i, *input_shape) float32, y (B_i,) int64)`` per source domain.
    target : torch.Tensor or None
        Unlabelled target inputs ``(B_t, *input_shape)``.
    labelled : (torch.Tensor, torch.Tensor) or None
        Labelled target ``(x (B_l, ...), y (B_l,))``: k per class (``target-few``) or the whole
        split (``target-all``, the oracle).

    ``B_s``, ``B_t`` and ``B_l`` may differ and may be 1.
    """

    sources: List[Tuple[str, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    target: Optional[torch.Tensor] = None
    labelled: Optional[Tuple[torch.Tensor, torch.Tensor]] = None

    def _need(self, what: str, stream: str):
        raise ValueError(f"this batch has no {what}: the method must declare {stream!r} in its needs")

    @cached_property
    def xs(self) -> torch.Tensor:
        """Source inputs of all source domains pooled, ``(sum B_i, *input_shape)``."""
        if not self.sources:
            self._need("source examples", SOURCE)
        return self.sources[0][1] if len(self.sources) == 1 else torch.cat([x for _, x, _ in self.sources])

    @cached_property
    def ys(self) -> torch.Tensor:
        """Source labels pooled like :attr:`xs`, ``(sum B_i,)`` int64."""
        if not self.sources:
            self._need("source labels", SOURCE)
        return self.sources[0][2] if len(self.sources) == 1 else torch.cat([y for _, _, y in self.sources])

    @property
    def xt(self) -> torch.Tensor:
        """Unlabelled target inputs ``(B_t, *input_shape)``."""
        if self.target is None:
            self._need("unlabelled target examples", TARGET)
        return self.target

    @property
    def xl(self) -> torch.Tensor:
        """Labelled target inputs ``(B_l, *input_shape)``."""
        if self.labelled is None:
            self._need("labelled target examples", TARGET_FEW)
        return self.labelled[0]

    @property
    def yl(self) -> torch.Tensor:
        """Labelled target labels ``(B_l,)``."""
        if self.labelled is None:
            self._need("labelled target labels", TARGET_FEW)
        return self.labelled[1]
