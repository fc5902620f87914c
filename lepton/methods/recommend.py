"""Cross-domain recommendation methods: the ranking task's entries in the method registry.

Each scores a (user, target item) pair with embeddings over the users and items of a
:class:`lepton.data.interactions.RankingData` pair and trains with the BPR loss
(:func:`lepton.losses.bpr_loss`) on ``(user, positive, sampled item)`` triples. The training loop
(:mod:`lepton.training.ranking`) calls :meth:`Recommender.update` with a :class:`RankBatch` of
source and target triples each step, and :meth:`Recommender.scores` to rank.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Optional

import numpy as np
import torch
from torch import nn

from .. import losses
from .base import METHODS, SOURCE, TARGET, HParam, Method

#: Every recommendation method's settings of the ranking protocol (see
#: :func:`lepton.data.interactions.pair_interactions`).
RANKING_HPARAMS: Dict[str, HParam] = {
    "lr": HParam(5e-3, 1e-6, 1.0, "Adam learning rate", log=True),
    "weight_decay": HParam(0.0, 0.0, 0.1, "L2 weight decay of the optimiser"),
    "feature_dim": HParam(32, 4, 512, "size D of the user and item embeddings"),
    "l2": HParam(1e-4, 0.0, 1.0, "L2 penalty on the embeddings of each batch (BPR's regulariser)"),
    "positive_rating": HParam(4.0, 0.0, 100.0, "a rating at least this is a positive interaction"),
    "cold_start_k": HParam(0, 0, 50, "target interactions a cold-start user keeps for training"),
    "cold_start_share": HParam(0.2, 0.0, 1.0, "share of the eligible target users made cold-start"),
    "n_negatives": HParam(99, 0, 10000, "sampled items the held-out item is ranked against (0: all items)"),
}


@dataclass
class RankBatch:
    """One step's triples: ``(B, 3)`` int64 ``[user, positive item, sampled item]`` of the source
    (``None`` for a method that does not train on it) and of the target."""

    source: Optional[torch.Tensor]
    target: Optional[torch.Tensor]


class Recommender(Method):
    """Base of the ranking methods: user and item embeddings, scores ``<p_u, q_i> + b_i``.

    Every item has a learnt bias ``b_i`` (its popularity, as in the ``implicit`` library's BPR), so a
    user the model knows nothing about still gets the popular items rather than a random list.

    Parameters
    ----------
    n_users, n_items_source, n_items_target : int
    hparams : dict, optional
    device, total_steps, seed
        As in :class:`lepton.methods.Method`.
    """

    task: ClassVar[str] = "ranking"
    HPARAMS: ClassVar[Dict[str, HParam]] = {}
    needs = (TARGET,)
    trains: ClassVar[bool] = True
    #: The validation items belong to warm users, so they cannot judge what only cold-start users
    #: get (EMCDR's mapping): such a method's model is its last epoch, not the best-validated one.
    select_last: ClassVar[bool] = False

    def __init__(self, n_users: int, n_items_source: int, n_items_target: int, hparams: Optional[dict] = None,
                 device: Any = "cpu", total_steps: int = 1, seed: int = 0):
        nn.Module.__init__(self)
        self.hparams = self.validate_hparams(hparams or {})
        self._device = torch.device(device)
        self.total_steps = max(1, int(total_steps))
        self.amp = False
        self.sizes = (int(n_users), int(n_items_source), int(n_items_target))
        self.generator = torch.Generator().manual_seed(int(seed) + 7919)
        d = int(self.hparams["feature_dim"])
        self.build(d)
        self.to(self._device)
        params = list(self.trainable_parameters())
        self.optimizer = self.make_optimizer(params) if params else None

    @classmethod
    def all_hparams(cls) -> Dict[str, HParam]:
        return {**RANKING_HPARAMS, **cls.HPARAMS}

    def _emb(self, n: int, d: int) -> nn.Embedding:
        e = nn.Embedding(max(1, n), d)
        nn.init.normal_(e.weight, std=0.1)
        return e

    def build(self, d: int) -> None:  # type: ignore[override]
        """Create the embeddings (dimension ``d``)."""

    def _bias(self, n: int) -> nn.Embedding:
        b = nn.Embedding(max(1, n), 1)
        nn.init.zeros_(b.weight)
        return b

    def _bpr(self, users: nn.Embedding, items: nn.Embedding, triples: torch.Tensor, bias: nn.Embedding) -> torch.Tensor:
        u, i, j = users(triples[:, 0]), items(triples[:, 1]), items(triples[:, 2])
        bi, bj = bias(triples[:, 1]).squeeze(1), bias(triples[:, 2]).squeeze(1)
        loss = losses.bpr_loss((u * i).sum(1) + bi, (u * j).sum(1) + bj)
        return loss + self.hparams["l2"] * (u.pow(2).sum(1) + i.pow(2).sum(1) + j.pow(2).sum(1)).mean()

    def target_users(self, users: torch.Tensor) -> torch.Tensor:
        """Target-domain user embeddings ``(U, D)`` of user indices ``(U,)``."""
        return self.user_t(users)

    @torch.no_grad()
    def scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores of candidate target items.

        Parameters
        ----------
        users : np.ndarray
            int64 ``(U,)``.
        items : np.ndarray
            int64 ``(U, C)`` target item indices per user.

        Returns
        -------
        np.ndarray
            float32 ``(U, C)``; higher ranks first.
        """
        u = self.target_users(torch.as_tensor(users, device=self._device))
        it = torch.as_tensor(items, device=self._device)
        q, b = self.item_t(it), self.bias_t(it).squeeze(-1)  # (U, C, D), (U, C)
        return (torch.einsum("ud,ucd->uc", u, q) + b).cpu().numpy().astype(np.float32)

    def user_features(self, users: np.ndarray, domain: str) -> np.ndarray:
        """User embeddings ``(U, D)`` float32 in the ``source`` or ``target`` domain (for the map)."""
        with torch.no_grad():
            idx = torch.as_tensor(users, device=self._device)
            emb = self.target_users(idx) if domain == "target" else self.source_users(idx)
        return emb.cpu().numpy().astype(np.float32)

    def source_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_s(users) if hasattr(self, "user_s") else self.target_users(users)

    def item_features(self, items: np.ndarray, domain: str) -> Optional[np.ndarray]:
        """Item embeddings ``(I, D)`` float32 of the ``source`` or ``target`` domain's items (for
        the map), or ``None`` when the method learns none there (BPR-MF's source, popularity)."""
        emb = getattr(self, "item_s" if domain == "source" else "item_t", None)
        if emb is None:
            return None
        with torch.no_grad():
            return emb(torch.as_tensor(items, device=self._device)).cpu().numpy().astype(np.float32)

    def on_ranking_data(self, data) -> None:
        """Called once before training with the :class:`~lepton.data.interactions.RankingData`."""


@METHODS.register("popularity")
class Popularity(Recommender):
    """Most-popular baseline: every user gets the target items with the most training positives.

    No training; the same ranking for everyone, so it is the floor any personal model must beat.
    """

    summary = "rank target items by how many users liked them (no personalisation, no training)"
    trains = False

    def build(self, d: int) -> None:
        self.register_buffer("counts", torch.zeros(self.sizes[2]))

    def on_ranking_data(self, data) -> None:
        c = np.bincount(data.train_t[:, 1], minlength=self.sizes[2]).astype(np.float32)
        self.counts.copy_(torch.from_numpy(c))

    def update(self, batch, step):  # pragma: no cover - never called: trains is False
        return {}

    @torch.no_grad()
    def scores(self, users, items):
        c = self.counts.cpu().numpy()
        return c[np.asarray(items)]  # equal counts tie, and a tie counts against the held-out item

    def user_features(self, users, domain):
        return np.zeros((len(users), 1), np.float32)


@METHODS.register("bpr-mf")
class BPRMF(Recommender):
    """BPR matrix factorisation on the target domain only (Rendle et al., UAI 2009): the no-transfer baseline.

    ``L = BPR(<p_u, q_i> + b_i, <p_u, q_j> + b_j) + l2 (|p_u|^2 + |q_i|^2 + |q_j|^2)`` on target triples. A
    cold-start user's embedding learns from their ``cold_start_k`` target positives only.
    """

    summary = "BPR matrix factorisation on the target only (the no-transfer baseline)"

    def build(self, d):
        self.user_t, self.item_t = self._emb(self.sizes[0], d), self._emb(self.sizes[2], d)
        self.bias_t = self._bias(self.sizes[2])

    def update(self, batch, step):
        loss = self._bpr(self.user_t, self.item_t, batch.target, self.bias_t)
        self.optimize(loss)
        return {"bpr_target": loss.item()}


@METHODS.register("cmf")
class CMF(Recommender):
    """Collective matrix factorisation (Singh & Gordon, KDD 2008) with BPR losses: one user
    embedding shared by both domains, item embeddings per domain.

    ``L = BPR_target + source_weight * BPR_source``; a cold-start user's embedding is shaped by their
    source positives, which is how what they liked in the source reaches the target.
    """

    summary = "collective MF: one user embedding trained on source and target interactions"
    HPARAMS = {"source_weight": HParam(1.0, 0.0, 100.0, "weight of the source domain's BPR loss")}
    needs = (SOURCE, TARGET)

    def build(self, d):
        self.user_t = self._emb(self.sizes[0], d)
        self.item_s, self.item_t = self._emb(self.sizes[1], d), self._emb(self.sizes[2], d)
        self.bias_s, self.bias_t = self._bias(self.sizes[1]), self._bias(self.sizes[2])

    def update(self, batch, step):
        lt = self._bpr(self.user_t, self.item_t, batch.target, self.bias_t)
        ls = self._bpr(self.user_t, self.item_s, batch.source, self.bias_s)
        self.optimize(lt + self.hparams["source_weight"] * ls)
        return {"bpr_target": lt.item(), "bpr_source": ls.item()}


@METHODS.register("emcdr")
class EMCDR(Recommender):
    """EMCDR (Man et al., IJCAI 2017): embed each domain, then map source users into the target.

    1. For the first ``mf_fraction`` of the steps, BPR-MF in each domain separately (``U^s, V^s``
       and ``U^t, V^t``).
    2. Then an MLP ``f`` (``D -> 2D -> D``, tanh; the paper's non-linear mapping) is fitted on users
       with positives in both domains who are not cold-start: ``min ||f(U^s_u) - U^t_u||^2``.
    3. A cold-start user's target embedding is ``f(U^s_u)``; other users keep ``U^t_u``.

    The run's model is its last epoch (:attr:`Recommender.select_last`): validation items are warm
    users', and the mapping serves only cold-start users.
    """

    summary = "EMCDR: per-domain MF, then an MLP maps source user embeddings to the target for cold-start users"
    select_last = True
    HPARAMS = {"mf_fraction": HParam(0.7, 0.05, 0.95, "share of the steps spent on the per-domain factorisations")}
    needs = (SOURCE, TARGET)

    def build(self, d):
        self.user_s, self.item_s = self._emb(self.sizes[0], d), self._emb(self.sizes[1], d)
        self.user_t, self.item_t = self._emb(self.sizes[0], d), self._emb(self.sizes[2], d)
        self.bias_s, self.bias_t = self._bias(self.sizes[1]), self._bias(self.sizes[2])
        self.mapping = nn.Sequential(nn.Linear(d, 2 * d), nn.Tanh(), nn.Linear(2 * d, d))
        self.register_buffer("cold", torch.zeros(self.sizes[0], dtype=torch.bool))
        self.register_buffer("anchors", torch.zeros(0, dtype=torch.long))

    def make_optimizer(self, params):
        mf = [p for n, p in self.named_parameters() if not n.startswith("mapping.")]
        self.map_optimizer = torch.optim.Adam(self.mapping.parameters(), lr=self.hparams["lr"])
        return torch.optim.Adam(mf, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])

    def on_ranking_data(self, data) -> None:
        cold = torch.zeros(self.sizes[0], dtype=torch.bool)
        cold[torch.as_tensor(data.test_users[data.cold])] = True
        both = np.intersect1d(np.unique(data.train_s[:, 0]), np.unique(data.train_t[:, 0]))
        anchors = both[~cold.numpy()[both]]
        self.cold.copy_(cold.to(self._device))
        self.anchors = torch.as_tensor(anchors, dtype=torch.long, device=self._device)

    def update(self, batch, step):
        if step < self.hparams["mf_fraction"] * self.total_steps:
            lt = self._bpr(self.user_t, self.item_t, batch.target, self.bias_t)
            ls = self._bpr(self.user_s, self.item_s, batch.source, self.bias_s)
            self.optimize(lt + ls)
            return {"bpr_target": lt.item(), "bpr_source": ls.item()}
        n = len(self.anchors)
        pick = self.anchors[torch.randint(n, (min(256, n),), generator=self.generator).to(self._device)]
        with torch.no_grad():
            us, ut = self.user_s(pick), self.user_t(pick)
        loss = (self.mapping(us) - ut).pow(2).sum(1).mean()
        self.optimize(loss, self.map_optimizer)
        return {"mapping": loss.item()}

    def target_users(self, users):
        mapped = self.mapping(self.user_s(users))
        return torch.where(self.cold[users].unsqueeze(1), mapped, self.user_t(users))
