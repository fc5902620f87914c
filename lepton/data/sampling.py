"""Every seeded sampler of Lepton in one place: batch order, k-shot draws, capped and
class-stratified samples. Each takes its own seed or generator (never the global RNG), so runs
that share a process do not disturb each other."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch


class Cycler:
    """Endless seeded shuffled batches of indices ``0..n-1`` (a new permutation per pass).

    Parameters
    ----------
    n : int
        Number of examples (>= 1).
    batch_size : int
        Indices per batch; the last batch of a pass may be shorter, but a remainder of a single
        index is merged into the batch before it (a batch of one breaks BatchNorm in training mode),
        so with ``n >= 2`` every batch holds 2 to ``batch_size + 1`` indices. See
        :func:`batches_per_pass`.
    generator : torch.Generator
        CPU generator owned by the run.
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        if n < 1:
            raise ValueError("cannot draw batches from an empty split")
        self.n, self.bs, self.gen, self.perm, self.pos = int(n), int(batch_size), generator, None, int(n)

    def next(self) -> torch.Tensor:
        """int64 ``(b,)`` indices of the next batch, ``1 <= b <= batch_size + 1`` (see the class)."""
        if self.pos >= self.n:
            self.perm, self.pos = torch.randperm(self.n, generator=self.gen), 0
        end = self.pos + self.bs
        if self.n - end == 1 and self.n > 1:
            end += 1  # merge a lone last index into this batch
        b = self.perm[self.pos:end]
        self.pos += len(b)
        return b


def batches_per_pass(n: int, batch_size: int) -> int:
    """Batches :class:`Cycler` makes in one pass over ``n`` examples: ``ceil(n / batch_size)``, one
    fewer when a lone last example is merged into the batch before it."""
    k = -(-int(n) // int(batch_size))
    return k - 1 if n > 1 and k > 1 and n % batch_size == 1 else max(k, 1)


def k_shot_indices(y: np.ndarray, k: int, seed: int, class_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """Draw ``k`` examples of each class (seeded, without replacement).

    Parameters
    ----------
    y : np.ndarray
        int64 ``(N,)`` labels of the target train split.
    k : int
        Examples per class.
    seed : int
    class_names : sequence of str, optional
        For the error message (a :class:`lepton.data.Domain` is accepted too).

    Returns
    -------
    np.ndarray
        int64 ``(k * K,)`` sorted indices.

    Raises
    ------
    ValueError
        If a class has fewer than ``k`` examples (naming the class and its count).
    """
    names = getattr(class_names, "class_names", class_names)
    rng = np.random.default_rng(seed)
    out = []
    for c in range(int(y.max()) + 1 if len(y) else 0):
        idx = np.flatnonzero(y == c)
        if len(idx) < k:
            cname = names[c] if names is not None else str(c)
            raise ValueError(f"k={k} labelled target examples per class asked for, but class {cname!r} has only "
                             f"{len(idx)} in the target training split; lower k")
        out.append(rng.choice(idx, k, replace=False))
    return np.sort(np.concatenate(out)).astype(np.int64) if out else np.zeros(0, np.int64)


def capped_indices(n: int, cap: int, seed: int) -> np.ndarray:
    """Sorted seeded sample of at most ``cap`` indices of ``0..n-1`` (all of them if ``n <= cap``).

    Returns
    -------
    np.ndarray
        int64 ``(min(n, cap),)``.
    """
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False)).astype(np.int64)


def stratified_sample(y: np.ndarray, cap: int, seed: int = 0) -> np.ndarray:
    """Seeded class-stratified sample of at most ``cap`` indices.

    Each class gets a share proportional to its size (largest remainders first), and every class
    present keeps at least one example when ``cap`` allows.

    Parameters
    ----------
    y : np.ndarray
        int ``(N,)`` labels.
    cap : int
        Largest sample size (>= 1).
    seed : int

    Returns
    -------
    np.ndarray
        int64 sorted indices ``(min(N, cap),)``.
    """
    y = np.asarray(y)
    n = len(y)
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    share = counts * cap / n
    take = np.floor(share).astype(int)
    if cap >= len(classes):
        take = np.maximum(take, 1)
    left = cap - take.sum()
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    for i in order:
        if left <= 0:
            break
        if take[i] < counts[i]:
            take[i] += 1
            left -= 1
    while take.sum() > cap:  # only when every class got its minimum of one
        take[np.argmax(take)] -= 1
    out = [rng.choice(np.flatnonzero(y == c), k, replace=False) for c, k in zip(classes, take) if k > 0]
    return np.sort(np.concatenate(out)).astype(np.int64)
