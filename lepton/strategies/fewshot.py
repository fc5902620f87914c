"""Few-shot evaluation of a trained encoder on the target: linear probe and k-shot fine-tuning.

Both protocols draw ``k`` labelled examples per class from the target *training* split with
:func:`lepton.training.k_shot_indices` (draw ``i`` uses seed ``seed + i``, so every strategy
sees the same examples) and report accuracy on the whole target *test* split as mean and
standard deviation over the draws.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..evaluation.metrics import accuracy, batched
from ..data.sampling import k_shot_indices
from ..models import use_generator
from ..stats import mean_std


def draw_seeds(seed: int, draws: int) -> List[int]:
    """Seeds of the k-shot draws: ``[seed, seed + 1, ..., seed + draws - 1]``."""
    return [int(seed) + i for i in range(int(draws))]


def linear_probe_accuracy(f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, y_test: np.ndarray) -> float:
    """Accuracy of a logistic regression fitted on frozen features (the linear-probe protocol).

    Features are standardised with the training examples' mean and std; scikit-learn's
    ``LogisticRegression`` (L2, ``C=1``, lbfgs, multinomial) is fitted on them.

    Parameters
    ----------
    f_train : np.ndarray
        float32 ``(n, D)`` features of the labelled examples.
    y_train : np.ndarray
        int64 ``(n,)``; at least 2 classes.
    f_test : np.ndarray
        float32 ``(m, D)``.
    y_test : np.ndarray
        int64 ``(m,)``.

    Returns
    -------
    float
        In [0, 1].

    Raises
    ------
    ValueError
        With fewer than 2 classes among the labelled examples.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y_train)) < 2:
        raise ValueError("a linear probe needs labelled examples of at least 2 classes")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(f_train, y_train)
    return accuracy(y_test, clf.predict(f_test))


def finetune_accuracy(net: torch.nn.Module, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                      steps: int = 100, lr: float = 1e-3, seed: int = 0, optimizer: str = "adam") -> float:
    """Fine-tune a *copy* of ``net`` (all layers) on a few labelled examples; test accuracy.

    Full-batch steps of Adam (default) or plain SGD (MAML's test-time adaptation, Finn et al.,
    2017). Every initialisation (source-only, pretrained, meta-learned) is adapted the same way.
    The defaults (Adam, 1e-3, 100 steps) were chosen so that the k-shot training loss of a
    source-only digits model converges for k = 1, 5 and 10.

    Parameters
    ----------
    net : torch.nn.Module
        ``(B, *input_shape) -> (B, K)`` logits (e.g. ``method.net``); left unchanged.
    x, y : np.ndarray
        float32 ``(n, ...)`` and int64 ``(n,)`` labelled target examples.
    x_test, y_test : np.ndarray
        The target test split.
    steps : int
    lr : float
    seed : int
    optimizer : str
        ``adam`` or ``sgd``.
        Seeds dropout (the copy's own generator; the global RNG is not touched).

    Returns
    -------
    float
        Accuracy in [0, 1] (NaN for an empty test split).
    """
    dev = next(net.parameters()).device
    model = copy.deepcopy(net).to(dev)
    xb, yb = torch.from_numpy(np.ascontiguousarray(x)).to(dev), torch.from_numpy(np.ascontiguousarray(y)).to(dev)
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be adam or sgd, got {optimizer!r}")
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=lr)
    gen = torch.Generator(device=dev) if dev.type != "mps" else None
    if gen is not None:
        gen.manual_seed(int(seed))
    use_generator(model, gen)
    model.train()
    for _ in range(int(steps)):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    if len(y_test) == 0:
        return float("nan")
    pred = batched(lambda t: model(t.to(dev)), x_test).argmax(1)
    return accuracy(y_test, pred)


def evaluate_few_shot(method, target, ks: Sequence[int] = (1, 5, 10), draws: int = 5, seed: int = 0,
                      adapt_steps: int = 100, adapt_lr: float = 1e-3, adapt_optimizer: str = "adam",
                      finetune: bool = True) -> Dict[str, Any]:
    """Evaluate a trained method's encoder on the target with few labels.

    Protocols, for each ``k`` and each of ``draws`` seeded draws of ``k`` labelled target
    examples per class: ``linear-probe`` (logistic regression on frozen ``T(E(x))`` features)
    and ``fine-tune`` (all layers, :func:`finetune_accuracy`); plus ``no target labels``, the
    method's own predictions (``k = 0``, one value).

    Parameters
    ----------
    method : lepton.methods.Method
        Trained; not modified.
    target : lepton.data.Domain
        The harmonised target domain of the run.
    ks : sequence of int
        Labelled examples per class (each >= 1).
    draws : int
        Draws per ``k`` (the issue asks for at least 5).
    seed : int
        Draw ``i`` uses seed ``seed + i``.
    adapt_steps, adapt_lr, adapt_optimizer : int, float, str
        Steps, learning rate and optimizer (``adam`` or ``sgd``) of ``fine-tune``.
    finetune : bool
        Also run the fine-tuning protocol (slower).

    Returns
    -------
    dict
        ``rows``: list of ``{"protocol", "k", "mean", "std", "values", "draws"}`` (accuracies in
        [0, 1]); ``seeds``; ``n_test``; ``adapt`` settings.

    Raises
    ------
    ValueError
        If a class has fewer than ``max(ks)`` training examples (naming it), or a ``k < 1``.
    """
    if any(int(k) < 1 for k in ks):
        raise ValueError(f"k must be >= 1 labelled target examples per class; got {list(ks)}")
    seeds = draw_seeds(seed, draws)
    picks = {(k, s): k_shot_indices(target.y_train, int(k), s, target.class_names) for k in ks for s in seeds}
    used = np.unique(np.concatenate(list(picks.values()))) if picks else np.zeros(0, np.int64)
    pos = {int(i): j for j, i in enumerate(used)}
    f_used = batched(method.features, target.x_train[used]).reshape(len(used), -1)
    f_test = batched(method.features, target.x_test).reshape(len(target.y_test), -1)
    zero = accuracy(target.y_test, batched(method.predict, target.x_test).argmax(1)) if len(target.y_test) else math.nan
    rows = [{"protocol": "no target labels", "k": 0, **mean_std([zero]), "draws": 1}]
    for k in ks:
        probe, tuned = [], []
        for s in seeds:
            idx = picks[(k, s)]
            rel = np.array([pos[int(i)] for i in idx])
            probe.append(linear_probe_accuracy(f_used[rel], target.y_train[idx], f_test, target.y_test))
            if finetune:
                tuned.append(finetune_accuracy(method.net, target.x_train[idx], target.y_train[idx], target.x_test,
                                               target.y_test, adapt_steps, adapt_lr, seed=s,
                                               optimizer=adapt_optimizer))
        rows.append({"protocol": "linear-probe", "k": int(k), **mean_std(probe), "draws": len(seeds)})
        if finetune:
            rows.append({"protocol": "fine-tune", "k": int(k), **mean_std(tuned), "draws": len(seeds)})
    return {"rows": rows, "seeds": seeds, "n_test": int(len(target.y_test)),
            "adapt": {"steps": int(adapt_steps), "lr": float(adapt_lr), "optimizer": adapt_optimizer, "layers": "all"}}
