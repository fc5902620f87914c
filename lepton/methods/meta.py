"""Meta-learning over episodes from the source domains: first-order MAML and Reptile."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch.func import functional_call

from .base import METHODS, SOURCE, HParam
from .pretraining import MultiDomainMethod

Params = Dict[str, torch.Tensor]
Episode = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]]


def sgd_step(params: Params, grads: Sequence[torch.Tensor], lr: float) -> Params:
    """One inner-loop step ``theta' = theta - alpha * grad`` (Finn et al., ICML 2017, eq. 1).

    Parameters
    ----------
    params : dict of str to torch.Tensor
        ``theta`` (any shapes).
    grads : sequence of torch.Tensor
        Same order and shapes as ``params.values()``.
    lr : float
        ``alpha``.

    Returns
    -------
    dict of str to torch.Tensor
        New leaf tensors (detached, ``requires_grad=True``): the first-order approximation drops
        the second derivatives, so the step is not differentiated through.
    """
    return {n: (p - lr * g).detach().requires_grad_(True) for (n, p), g in zip(params.items(), grads)}


def reptile_interpolate(theta: Params, adapted: Sequence[Params], eps: float) -> Params:
    """Batched Reptile meta-update ``theta <- theta + eps * (mean_i theta'_i - theta)``
    (Nichol, Achiam & Schulman, arXiv:1803.02999, algorithm 2).

    Parameters
    ----------
    theta : dict of str to torch.Tensor
        Current initialisation.
    adapted : sequence of dict
        ``theta'_i`` after the inner loop on task ``i`` (same keys and shapes).
    eps : float
        Outer step size ``epsilon`` in [0, 1].

    Returns
    -------
    dict of str to torch.Tensor
        Detached new parameters.

    Raises
    ------
    ValueError
        With no adapted parameters.
    """
    if not adapted:
        raise ValueError("reptile_interpolate needs at least one adapted parameter set")
    out = {}
    for n, p in theta.items():
        mean = torch.stack([a[n].detach() for a in adapted]).mean(0)
        out[n] = (p.detach() + eps * (mean - p.detach())).detach()
    return out


class EpisodeSampler:
    """Seeded N-way k-shot episodes from labelled domains (Vinyals et al., NeurIPS 2016).

    Each episode picks a domain uniformly, ``n_way`` of its classes (all shared classes when
    ``n_way`` is 0 or the number of classes), and ``k_shot`` support plus ``query`` query
    examples per class, without replacement. Labels keep their class index; the chosen classes
    are returned so that losses restrict the logits to them.

    Parameters
    ----------
    sources : sequence of (str, torch.Tensor, torch.Tensor)
        ``(name, x (N, ...), y (N,) int64)`` per domain.
    n_classes : int
    n_way, k_shot, query : int
    generator : torch.Generator

    Raises
    ------
    ValueError
        ``n_way`` above the number of classes, or too few examples of a class in a domain for
        ``k_shot + query`` (naming domain, class and count).
    """

    def __init__(self, sources, n_classes: int, n_way: int, k_shot: int, query: int, generator: torch.Generator):
        self.sources, self.k, self.q, self.gen = list(sources), int(k_shot), int(query), generator
        self.n_way = n_classes if n_way in (0, n_classes) else int(n_way)
        if self.n_way > n_classes or self.n_way < 2:
            raise ValueError(f"meta-learning n_way={n_way} must be 0 (all classes) or in [2, {n_classes}]")
        need = self.k + self.q
        self.by_class: List[List[torch.Tensor]] = []
        for name, _, y in self.sources:
            idx = [torch.nonzero(y.cpu() == c).reshape(-1) for c in range(n_classes)]
            short = [(c, len(i)) for c, i in enumerate(idx) if len(i) < need]
            if len(short) > n_classes - self.n_way:
                c, n = short[0]
                raise ValueError(f"meta-learning episodes need k_shot + query = {need} examples per class, but class "
                                 f"{c} of domain {name!r} has only {n}; lower k_shot or query")
            self.by_class.append(idx)

    def sample(self) -> Episode:
        """One episode ``(x_support, y_support, x_query, y_query, classes)``; ``classes`` int64 ``(N,)``."""
        d = int(torch.randint(len(self.sources), (1,), generator=self.gen))
        _, x, y = self.sources[d]
        need = self.k + self.q
        ok = torch.tensor([c for c, i in enumerate(self.by_class[d]) if len(i) >= need])
        classes = ok[torch.randperm(len(ok), generator=self.gen)[:self.n_way]].sort().values  # (N,)
        sup, qry = [], []
        for c in classes.tolist():
            pool = self.by_class[d][c]
            pick = pool[torch.randperm(len(pool), generator=self.gen)[:need]]
            sup.append(pick[:self.k])
            qry.append(pick[self.k:])
        s, q = torch.cat(sup), torch.cat(qry)
        return x[s], y[s], x[q], y[q], classes.to(x.device)


class _Meta(MultiDomainMethod):
    """Shared machinery of the meta-learners: episodes, the inner loop, restricted logits."""

    stage_kind = "meta"
    needs = (SOURCE,)
    min_sources = 1
    HPARAMS = {
        "n_way": HParam(0, 0, 1000, "classes per episode; 0 = all shared classes (the target task's)"),
        "k_shot": HParam(5, 1, 1000, "support examples per class in an episode"),
        "query": HParam(5, 1, 1000, "query examples per class in an episode"),
        "meta_batch": HParam(2, 1, 64, "episodes per meta-update"),
        "inner_steps": HParam(3, 1, 100, "SGD steps of the inner loop (task adaptation)"),
        "inner_lr": HParam(0.05, 1e-5, 10.0, "SGD learning rate alpha of the inner loop", log=True),
        "zero_head": HParam(False, help="start every inner loop from a zero classifier head (the zeroing trick "
                                        "of Kao et al., ICLR 2022); the head is then not meta-learned"),
    }

    def on_attach(self) -> None:
        h = self.hparams
        self.sampler = EpisodeSampler(self.sources, self.n_classes, int(h["n_way"]), int(h["k_shot"]),
                                      int(h["query"]), self.generator)

    def episodes(self, batch) -> List[Episode]:
        """``meta_batch`` episodes; without attached domains, the source batch is one task."""
        if self.sources:
            return [self.sampler.sample() for _ in range(int(self.hparams["meta_batch"]))]
        return [(batch.xs, batch.ys, batch.xs, batch.ys, None)]

    def task_loss(self, params: Params, x: torch.Tensor, y: torch.Tensor, classes: Optional[torch.Tensor]):
        """Cross-entropy of the network with ``params`` over the episode's classes only."""
        logits = functional_call(self.net, params, (x,))  # (B, K)
        if classes is None:
            return F.cross_entropy(logits, y)
        target = torch.searchsorted(classes, y)  # position of each label among the chosen classes
        return F.cross_entropy(logits[:, classes], target)

    def adapt(self, x, y, classes) -> Tuple[Params, float]:
        """Inner loop: ``inner_steps`` SGD steps from the current parameters (the head zeroed first
        when ``zero_head``); returns the adapted parameters and the last loss."""
        fast = {n: p.detach().clone().requires_grad_(True) for n, p in self.net.named_parameters()}
        if self.hparams["zero_head"]:
            for n in ("head.weight", "head.bias"):
                fast[n] = torch.zeros_like(fast[n]).requires_grad_(True)
        loss = torch.zeros(())
        for _ in range(int(self.hparams["inner_steps"])):
            with self.autocast():
                loss = self.task_loss(fast, x, y, classes)
            grads = torch.autograd.grad(loss, list(fast.values()))
            fast = sgd_step(fast, grads, float(self.hparams["inner_lr"]))
        return fast, float(loss.item())


@METHODS.register("maml")
class FOMAML(_Meta):
    """First-order MAML (Finn, Abbeel & Levine, ICML 2017, sec. 5.2).

    For each of ``meta_batch`` episodes: adapt ``theta' = theta - alpha grad L_support(theta)``
    (``inner_steps`` times), then take the query gradient at the adapted parameters,
    ``g_i = grad_{theta'} L_query(theta')``; the meta-update is an Adam step on
    ``theta`` with ``mean_i g_i`` (second derivatives dropped). Episodes restrict the logits to
    their classes; E, T and the K-way head are meta-learned (``zero_head`` restarts the head at
    zero in every inner loop instead).

    Defaults: with ``inner_lr=0.05`` (3 steps) and a meta learning rate of 1e-3, meta-training
    on the digit domains diverged after 1-2 epochs: the first-order meta-gradient, which ignores
    how the inner loop damps the initialisation, grew the logits of the initialisation epoch
    after epoch (the inner loop absorbed them) until the ReLU features died and the query loss
    stuck at ``log K``. ``inner_lr=0.01`` with 5 steps and a meta learning rate of 3e-4 kept the
    source query loss falling for 6 epochs (chosen on source episodes only).
    """

    summary = "first-order MAML over N-way k-shot episodes from the source domains"
    HPARAMS = {**_Meta.HPARAMS,
               "lr": HParam(3e-4, 1e-6, 1.0, "Adam learning rate of the meta-update", log=True),
               "inner_steps": HParam(5, 1, 100, "SGD steps of the inner loop (task adaptation)"),
               "inner_lr": HParam(0.01, 1e-5, 10.0, "SGD learning rate alpha of the inner loop", log=True)}

    def update(self, batch, step):
        eps = self.episodes(batch)
        self.optimizer.zero_grad(set_to_none=True)
        sup, qry = [], []
        for xs, ys, xq, yq, cls in eps:
            fast, ls = self.adapt(xs, ys, cls)
            with self.autocast():
                lq = self.task_loss(fast, xq, yq, cls)
            grads = torch.autograd.grad(lq, list(fast.values()))
            for (n, p), g in zip(self.net.named_parameters(), grads):
                if self.hparams["zero_head"] and n.startswith("head."):
                    continue  # the zeroed head is not part of the initialisation
                g = g / len(eps)
                p.grad = g if p.grad is None else p.grad + g
            sup.append(ls)
            qry.append(lq.item())
        self.optimizer.step()
        return {"support": sum(sup) / len(sup), "query": sum(qry) / len(qry)}


@METHODS.register("reptile")
class Reptile(_Meta):
    """Reptile (Nichol, Achiam & Schulman, 2018): adapt on each episode's examples (support and
    query together) with ``inner_steps`` SGD steps, then move the initialisation towards the
    mean adapted parameters, ``theta <- theta + eps (mean_i theta'_i - theta)``, with ``eps``
    annealed linearly from ``meta_step`` to 0 over the run (as in the paper). The meta-update is
    this interpolation, so ``lr`` and ``weight_decay`` (of the unused Adam optimiser) have no effect.
    """

    summary = "Reptile over N-way k-shot episodes from the source domains"
    HPARAMS = {**_Meta.HPARAMS,
               "meta_step": HParam(0.5, 0.0, 1.0, "outer step size epsilon at the start (annealed to 0)")}

    def update(self, batch, step):
        eps_list = self.episodes(batch)
        theta = {n: p.detach() for n, p in self.net.named_parameters()}
        adapted, task_losses = [], []
        for xs, ys, xq, yq, cls in eps_list:
            fast, loss = self.adapt(torch.cat([xs, xq]), torch.cat([ys, yq]), cls)
            adapted.append(fast)
            task_losses.append(loss)
        eps = float(self.hparams["meta_step"]) * (1.0 - self.progress(step))
        new = reptile_interpolate(theta, adapted, eps)
        with torch.no_grad():
            for n, p in self.net.named_parameters():
                p.copy_(new[n])
        return {"task": sum(task_losses) / len(task_losses), "meta_step": eps}
