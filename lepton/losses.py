"""Transfer-learning losses as pure functions of tensors.

Each docstring states the formula as in the paper; ``tests/test_losses.py`` checks each one
against a hand computation.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F


def coral_loss(fs: torch.Tensor, ft: torch.Tensor, relative: bool = False) -> torch.Tensor:
    """Deep CORAL loss (Sun & Saenko, "Deep CORAL", ECCV-W 2016, eq. 1), or its scale-free form.

    Paper form (``relative=False``): ``L = ||C_S - C_T||_F^2 / (4 d^2)`` with the unbiased
    covariances ``C = (X^T X - (1^T X)^T (1^T X) / n) / (n - 1)``. It grows with the fourth power of
    the features' scale: multiplying the features by ``a`` multiplies it by ``a^4``, so one weight
    cannot suit LeNet image features and raw 400-d table features alike (issue 12).

    Relative form (``relative=True``, ``deep-coral``'s ``coral_form="relative"``):
    ``L = ||C_S - C_T||_F^2 / ((||C_S||_F^2 + ||C_T||_F^2) / 2)``, the covariance gap as a fraction
    of the covariances' own size. It is unchanged when the features are multiplied by any
    ``a != 0`` (so its gradient has no component that shrinks or grows the features) and lies in
    ``[0, 4]`` (``||a - b||^2 <= 2 ||a||^2 + 2 ||b||^2``) whatever ``d``: for features whose scale
    nothing fixes (an unscaled table). Measured weaker than the paper form on standardised inputs
    (``bench/defaults.md``), hence not the default.

    Parameters
    ----------
    fs : torch.Tensor
        float ``(n_s, d)`` source features.
    ft : torch.Tensor
        float ``(n_t, d)`` target features.
    relative : bool
        The scale-free form above instead of the paper's.

    Returns
    -------
    torch.Tensor
        Scalar. Zero (with a gradient path) when either batch has fewer than 2 rows, where the
        covariance is undefined (``n - 1 = 0``), and in the relative form when both covariances
        are zero; :func:`lepton.training.plan` says so in its notes when the batch size makes such
        batches (or a rank-deficient covariance) happen.

    Raises
    ------
    ValueError
        If the feature dimensions differ or an input is not 2-D.
    """
    _check_pair(fs, ft)
    d = fs.shape[1]
    if fs.shape[0] < 2 or ft.shape[0] < 2:
        return (fs.sum() + ft.sum()) * 0.0
    cs = _covariance(fs)  # (d, d)
    ct = _covariance(ft)  # (d, d)
    gap = ((cs - ct) ** 2).sum()
    if not relative:
        return gap / (4.0 * d * d)
    size = 0.5 * ((cs ** 2).sum() + (ct ** 2).sum())
    return gap / size if size > 0 else gap * 0.0


def _covariance(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    xc = x - x.mean(dim=0, keepdim=True)  # (n, d)
    return xc.t() @ xc / (n - 1)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"features must be 2-D (n, d); got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")


def gaussian_kernel_matrix(x: torch.Tensor, y: torch.Tensor, sigmas: Sequence[float]) -> torch.Tensor:
    """Sum of Gaussian kernels ``k(x, y) = sum_i exp(-||x - y||^2 / (2 sigma_i^2))``.

    Parameters
    ----------
    x : torch.Tensor
        ``(n, d)``.
    y : torch.Tensor
        ``(m, d)``.
    sigmas : sequence of float
        Bandwidths (> 0).

    Returns
    -------
    torch.Tensor
        ``(n, m)`` kernel matrix.
    """
    d2 = torch.cdist(x, y, p=2.0) ** 2  # (n, m)
    return sum(torch.exp(-d2 / (2.0 * s * s)) for s in sigmas)


def mmd_loss(fs: torch.Tensor, ft: torch.Tensor, sigmas: Optional[Sequence[float]] = None) -> torch.Tensor:
    """Multi-kernel maximum mean discrepancy, biased estimate (Long et al., "DAN", ICML 2015).

    ``MMD^2 = mean k(s, s') + mean k(t, t') - 2 mean k(s, t)`` with ``k`` the sum of Gaussian
    kernels of bandwidths ``sigmas``. With ``sigmas=None`` the bandwidths are
    ``b * 2^j, j = -2..2`` around the median pairwise distance ``b`` of the pooled batch (the
    median heuristic; the base is detached from the graph). DAN learns the kernel weights; we
    use equal weights, as Transfer-Learning-Library's default does.

    Parameters
    ----------
    fs : torch.Tensor
        ``(n_s, d)`` source features.
    ft : torch.Tensor
        ``(n_t, d)`` target features; ``n_s`` and ``n_t`` may differ.
    sigmas : sequence of float, optional
        Kernel bandwidths.

    Returns
    -------
    torch.Tensor
        Scalar ``MMD^2`` (>= 0 up to rounding). Zero for an empty batch.
    """
    _check_pair(fs, ft)
    if fs.shape[0] == 0 or ft.shape[0] == 0:
        return (fs.sum() + ft.sum()) * 0.0
    if sigmas is None:
        with torch.no_grad():
            pooled = torch.cat([fs, ft])
            dist = torch.cdist(pooled, pooled)
            off = dist[~torch.eye(len(pooled), dtype=torch.bool, device=dist.device)]
            base = float(off.median()) if off.numel() else 1.0
            base = base if base > 0 else 1.0
        sigmas = [base * 2.0 ** j for j in (-2, -1, 0, 1, 2)]
    kss = gaussian_kernel_matrix(fs, fs, sigmas).mean()
    ktt = gaussian_kernel_matrix(ft, ft, sigmas).mean()
    kst = gaussian_kernel_matrix(fs, ft, sigmas).mean()
    return kss + ktt - 2.0 * kst


def linear_mmd(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """Linear-kernel MMD: ``||mean(fs) - mean(ft)||^2`` (Gretton et al., JMLR 2012).

    Parameters
    ----------
    fs, ft : torch.Tensor
        ``(n_s, d)`` and ``(n_t, d)``.

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    _check_pair(fs, ft)
    return ((fs.mean(0) - ft.mean(0)) ** 2).sum()


def domain_adversarial_loss(logits_s: torch.Tensor, logits_t: torch.Tensor) -> torch.Tensor:
    """Domain classification loss of DANN (Ganin et al., JMLR 2016, eq. 9).

    Binary cross-entropy of a domain discriminator with source labelled 1 and target 0, averaged
    over each domain separately and then over the two domains, so unequal batch sizes weigh the
    domains equally: ``L = (BCE(d_s, 1) + BCE(d_t, 0)) / 2``. Used behind a gradient reversal
    layer, minimising it trains the discriminator and maximises it for the encoder.

    Parameters
    ----------
    logits_s : torch.Tensor
        ``(n_s,)`` or ``(n_s, 1)`` discriminator logits on source features.
    logits_t : torch.Tensor
        ``(n_t,)`` or ``(n_t, 1)`` on target features.

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    ls, lt = logits_s.reshape(-1), logits_t.reshape(-1)
    bs = F.binary_cross_entropy_with_logits(ls, torch.ones_like(ls))
    bt = F.binary_cross_entropy_with_logits(lt, torch.zeros_like(lt))
    return 0.5 * (bs + bt)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-sample prediction entropy ``H(p) = -sum_c p_c log p_c`` in nats, ``p = softmax(logits)``.

    Parameters
    ----------
    logits : torch.Tensor
        ``(n, C)``.

    Returns
    -------
    torch.Tensor
        ``(n,)``.
    """
    logp = F.log_softmax(logits, dim=1)
    return -(logp.exp() * logp).sum(dim=1)


def information_maximization(logits: torch.Tensor) -> torch.Tensor:
    """Mutual information between inputs and predictions (Gomes et al. 2010; Shi & Sha 2012; SHOT).

    ``IM = H(mean_i p_i) - mean_i H(p_i)`` in nats. High when predictions are confident *and*
    spread over the classes; at most ``log C``. Used as a label-free checkpoint score.

    Parameters
    ----------
    logits : torch.Tensor
        ``(n, C)``.

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    p = F.softmax(logits, dim=1)
    pbar = p.mean(0)
    h_mean = -(pbar * torch.log(pbar.clamp_min(1e-12))).sum()
    return h_mean - entropy(logits).mean()


def soft_neighborhood_density(logits: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """Soft neighbourhood density (Saito et al., "Tune it the right way", ICCV 2021, eq. 1-3).

    With ``p_i = softmax(logits_i)`` L2-normalised, ``S_ij = <p_i, p_j>`` for ``i != j``,
    ``P_ij = softmax_j(S_ij / tau)`` and ``SND = mean_i H(P_i)``. Higher is better.

    Parameters
    ----------
    logits : torch.Tensor
        ``(n, C)`` with ``n >= 2``.
    temperature : float
        ``tau`` (the paper uses 0.05).

    Returns
    -------
    torch.Tensor
        Scalar.

    Raises
    ------
    ValueError
        With fewer than 2 samples.
    """
    if logits.shape[0] < 2:
        raise ValueError("soft neighbourhood density needs at least 2 samples")
    p = F.normalize(F.softmax(logits, dim=1), dim=1)  # (n, C)
    s = p @ p.t()  # (n, n)
    s = s.masked_fill(torch.eye(len(s), dtype=torch.bool, device=s.device), float("-inf"))
    q = F.softmax(s / temperature, dim=1)
    h = -(q * torch.log(q.clamp_min(1e-12))).sum(1)
    return h.mean()


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Autoencoder loss ``L = mean_i 1/2 ||x_i - x_hat_i||^2`` (sum over the input's elements).

    Parameters
    ----------
    x, x_hat : torch.Tensor
        Same shape ``(n, ...)``.

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    if x.shape != x_hat.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(x_hat.shape)}")
    return 0.5 * ((x - x_hat) ** 2).reshape(len(x), -1).sum(1).mean()


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Normalised temperature-scaled cross-entropy of SimCLR (Chen et al., ICML 2020, eq. 1).

    The ``2N`` projections ``z = [z1; z2]`` are L2-normalised, ``sim(u, v) = u^T v / (|u| |v|)``,
    and for the positive pair ``(i, j)`` (two views of one image)
    ``l(i, j) = -log( exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau) )``;
    ``L = 1 / (2N) sum_{m=1..N} [l(m, N + m) + l(N + m, m)]``.

    Parameters
    ----------
    z1, z2 : torch.Tensor
        float ``(N, P)`` projections of the first and second view; row ``m`` of each is one image.
    temperature : float
        ``tau > 0`` (the paper's default for small batches is 0.5).

    Returns
    -------
    torch.Tensor
        Scalar >= 0. Zero when ``N = 1`` (the positive is the only other view).

    Raises
    ------
    ValueError
        If the shapes differ, an input is not 2-D, it is empty, or ``temperature <= 0``.
    """
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(f"views must have the same 2-D shape (N, P); got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] == 0:
        raise ValueError("nt_xent_loss needs at least one pair of views")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, P)
    sim = z @ z.t() / temperature  # (2N, 2N)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    pos = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)  # (2N,)
    return F.cross_entropy(sim, pos)


def uncertainty_weighted_sum(task_losses: torch.Tensor, log_vars: torch.Tensor,
                             regression: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Multi-task loss with learned homoscedastic uncertainty (Kendall, Gal & Cipolla, CVPR 2018).

    With ``s_i = log sigma_i^2`` learned per task, eq. 10 (classification) and eq. 7
    (regression) combine to ``L = sum_i c_i exp(-s_i) L_i + s_i / 2`` where ``c_i = 1`` for a
    classification (cross-entropy) task and ``c_i = 1/2`` for a regression (squared error) task:
    ``1/sigma^2 L + log sigma`` and ``1/(2 sigma^2) L + log sigma``. The task's effective weight is
    ``c_i exp(-s_i)``; for a classification task its optimum is ``1 / (2 L_i)``.

    Parameters
    ----------
    task_losses : torch.Tensor
        float ``(T,)`` task losses ``L_i``.
    log_vars : torch.Tensor
        float ``(T,)`` learned ``s_i``.
    regression : torch.Tensor, optional
        bool ``(T,)``: which tasks are regressions (default: none).

    Returns
    -------
    torch.Tensor
        Scalar (may be negative).

    Raises
    ------
    ValueError
        If the shapes differ or are not 1-D.
    """
    if task_losses.dim() != 1 or task_losses.shape != log_vars.shape:
        raise ValueError(f"task_losses and log_vars must be 1-D of the same length; got "
                         f"{tuple(task_losses.shape)} and {tuple(log_vars.shape)}")
    c = torch.ones_like(task_losses)
    if regression is not None:
        c = torch.where(regression.to(task_losses.device), 0.5 * c, c)
    return (c * torch.exp(-log_vars) * task_losses + 0.5 * log_vars).sum()


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking loss (Rendle et al., UAI 2009).

    ``L = -(1/B) sum_b log sigmoid(pos_b - neg_b)``: a user's positive item should score above an
    item sampled from those they did not interact with.

    Parameters
    ----------
    pos, neg : torch.Tensor
        float ``(B,)`` scores of the positive and the sampled item of each triple.

    Returns
    -------
    torch.Tensor
        Scalar, ``log 2`` when the scores are equal.
    """
    if pos.shape != neg.shape:
        raise ValueError(f"bpr_loss: pos {tuple(pos.shape)} and neg {tuple(neg.shape)} must have the same shape")
    return -torch.nn.functional.logsigmoid(pos - neg).mean()


# ----- the methods that lead the field (issue 16) ----------------------------------------------
def multilinear_map(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """CDAN's multilinear conditioning ``T(f, g) = f (x) g``, flattened (Long et al., NeurIPS 2018, eq. 4).

    Parameters
    ----------
    f : torch.Tensor
        float ``(B, D)`` features.
    g : torch.Tensor
        float ``(B, K)`` class probabilities.

    Returns
    -------
    torch.Tensor
        ``(B, K * D)``: row ``b`` is ``vec(g_b f_b^T)`` (class ``k``'s block is ``g_bk f_b``).
    """
    if f.dim() != 2 or g.dim() != 2 or len(f) != len(g):
        raise ValueError(f"multilinear_map needs f (B, D) and g (B, K) of the same B; got {tuple(f.shape)} and {tuple(g.shape)}")
    return torch.bmm(g.unsqueeze(2), f.unsqueeze(1)).reshape(len(f), -1)


def conditional_adversarial_loss(logits_s: torch.Tensor, logits_t: torch.Tensor, probs_s: torch.Tensor,
                                 probs_t: torch.Tensor, entropy_conditioning: bool = True) -> torch.Tensor:
    """CDAN's domain loss (Long et al., NeurIPS 2018, eq. 7 and sec. 3.3, CDAN+E).

    The discriminator's binary cross-entropy (source 1, target 0) on the multilinear map, each
    example weighted by ``w = 1 + exp(-H(g))`` (confident predictions count more) when
    ``entropy_conditioning``; the weights are normalised to mean 1 within each domain and the
    two domains' weighted means are averaged, as :func:`domain_adversarial_loss` does, so unequal
    batch sizes weigh the domains equally. Without conditioning it equals that loss.

    Parameters
    ----------
    logits_s, logits_t : torch.Tensor
        ``(n_s,)`` and ``(n_t,)`` discriminator logits.
    probs_s, probs_t : torch.Tensor
        ``(n_s, K)`` and ``(n_t, K)`` class probabilities behind them (no gradient is taken through the weights).
    entropy_conditioning : bool

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    def side(logit, probs, label):
        logit = logit.reshape(-1)
        bce = F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, label), reduction="none")
        if not entropy_conditioning:
            return bce.mean()
        h = -(probs * torch.log(probs.clamp_min(1e-12))).sum(1).detach()
        w = 1.0 + torch.exp(-h)
        return (w / w.mean() * bce).mean()
    return 0.5 * (side(logits_s, probs_s, 1.0) + side(logits_t, probs_t, 0.0))


def minimum_class_confusion(logits: torch.Tensor, temperature: float = 2.5) -> torch.Tensor:
    """Minimum class confusion (Jin et al., ECCV 2020, eqs. 1-6) of a target batch.

    With ``p = softmax(logits / T)``, example weights ``w_i = B (1 + exp(-H(p_i))) / sum_j (1 + exp(-H(p_j)))``
    (no gradient), the class confusion ``C = p^T diag(w) p`` (``K x K``), normalised per column
    ``C~_jk = C_jk / sum_i C_ik``, the loss is the off-diagonal mass ``(sum_jk C~_jk - tr C~) / K``:
    0 when no two classes are predicted together, up to ``(K - 1) / K``.

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, K)`` target logits.
    temperature : float
        ``T`` (the paper uses 2.5 for digits and images).

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    p = F.softmax(logits / temperature, dim=1)  # (B, K)
    h = -(p * torch.log(p.clamp_min(1e-12))).sum(1).detach()
    w = 1.0 + torch.exp(-h)
    w = len(p) * w / w.sum()
    c = (p * w[:, None]).t() @ p  # (K, K), symmetric
    c = c / c.sum(0, keepdim=True).clamp_min(1e-12)
    k = p.shape[1]
    return (c.sum() - torch.trace(c)) / k


def margin_disparity_discrepancy(y_s: torch.Tensor, y_s_adv: torch.Tensor, y_t: torch.Tensor,
                                 y_t_adv: torch.Tensor, margin: float = 4.0) -> torch.Tensor:
    """The adversary's loss of MDD (Zhang et al., ICML 2019, eq. 24; as in Transfer-Learning-Library).

    With ``h_s = argmax y_s`` and ``h_t = argmax y_t`` the main classifier's predictions (no gradient),
    ``L = margin * CE(y_s_adv, h_s) - mean log(1 - softmax(y_t_adv)[h_t])``: the adversarial head
    minimises it (agree with the classifier on the source, disagree on the target, the margin
    disparity); the encoder, behind gradient reversal, maximises it, which shrinks the discrepancy.

    Parameters
    ----------
    y_s, y_t : torch.Tensor
        ``(n_s, K)`` and ``(n_t, K)`` logits of the main head.
    y_s_adv, y_t_adv : torch.Tensor
        The adversarial head's logits on the same examples.
    margin : float
        ``gamma`` (Transfer-Learning-Library uses 4 for digits and images).

    Returns
    -------
    torch.Tensor
        Scalar, at least 0.
    """
    hs, ht = y_s.argmax(1).detach(), y_t.argmax(1).detach()
    src = F.cross_entropy(y_s_adv, hs)
    q = F.softmax(y_t_adv, dim=1).gather(1, ht[:, None]).squeeze(1)
    tgt = -torch.log((1.0 - q).clamp_min(1e-6)).mean()
    return margin * src + tgt


def stepwise_feature_norm(f: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Stepwise adaptive feature norm, SAFN (Xu et al., ICCV 2019, eq. 6).

    ``L = mean_i (||f_i||_2 - (stop_grad(||f_i||_2) + delta))^2``: its gradient enlarges every
    feature norm by a step of ``delta`` per update (larger-norm features transfer better, the
    paper's finding). The value is ``delta^2``; what matters is the gradient.

    Parameters
    ----------
    f : torch.Tensor
        ``(B, D)`` features.
    delta : float
        The step ``Delta r`` (the paper uses 1.0).

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    norm = f.norm(p=2, dim=1)
    return ((norm - (norm.detach() + delta)) ** 2).mean()


def batch_spectral_penalty(fs: torch.Tensor, ft: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Batch spectral penalisation, BSP (Chen et al., ICML 2019, eq. 6).

    ``L = sum_{i <= k} (sigma_{s,i}^2 + sigma_{t,i}^2)``, the ``k`` largest squared singular values
    of the source and of the target feature batch: adversarial alignment inflates a few
    directions and so loses discriminability; damping them keeps it.

    Parameters
    ----------
    fs, ft : torch.Tensor
        ``(n_s, D)`` and ``(n_t, D)`` features.
    k : int
        Singular values penalised per domain (the paper uses 1).

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    _check_pair(fs, ft)
    ss, st = torch.linalg.svdvals(fs), torch.linalg.svdvals(ft)
    return (ss[:k] ** 2).sum() + (st[:k] ** 2).sum()


def cluster_pseudo_labels(features: torch.Tensor, probs: torch.Tensor, rounds: int = 1):
    """SHOT's self-supervised pseudo-labels (Liang et al., ICML 2020, eqs. 4-6; the authors' ``obtain_label``).

    Features are extended by a constant 1 and L2-normalised (cosine distance). Class centroids are
    the probability-weighted means ``c_k = sum_i p_ik f_i / sum_i p_ik``; each example takes its
    nearest centroid (cosine) among the classes that the model predicts for at least one example;
    then ``rounds`` times the centroids are recomputed from those hard labels and the examples
    relabelled.

    Parameters
    ----------
    features : torch.Tensor
        float ``(N, D)``.
    probs : torch.Tensor
        float ``(N, K)`` class probabilities of the same examples.
    rounds : int
        Hard-label refinements (the authors use 1).

    Returns
    -------
    labels : torch.Tensor
        int64 ``(N,)``.
    centroids : torch.Tensor
        ``(K, D + 1)`` unit-norm centroids; rows of classes no example is predicted as are zero
        (never nearest: see :func:`nearest_centroid`).
    """
    f = torch.cat([features, torch.ones(len(features), 1, dtype=features.dtype, device=features.device)], 1)
    f = F.normalize(f, dim=1)
    k = probs.shape[1]
    present = torch.bincount(probs.argmax(1), minlength=k) > 0

    def centres(weights):
        c = weights.t() @ f / (weights.sum(0)[:, None] + 1e-8)  # (K, D+1)
        c = F.normalize(c, dim=1)
        return c * present[:, None]

    c = centres(probs)
    labels = nearest_centroid(f, c, normalised=True)
    for _ in range(int(rounds)):
        c = centres(F.one_hot(labels, k).to(f.dtype))
        labels = nearest_centroid(f, c, normalised=True)
    return labels, c


def nearest_centroid(features: torch.Tensor, centroids: torch.Tensor, normalised: bool = False) -> torch.Tensor:
    """Index of the nearest centroid by cosine distance, skipping all-zero (absent) centroid rows.

    Parameters
    ----------
    features : torch.Tensor
        ``(N, D)``, or ``(N, D + 1)`` already extended and normalised when ``normalised``.
    centroids : torch.Tensor
        ``(K, D + 1)`` from :func:`cluster_pseudo_labels`.

    Returns
    -------
    torch.Tensor
        int64 ``(N,)``.
    """
    f = features
    if not normalised:
        f = torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype, device=f.device)], 1)
        f = F.normalize(f, dim=1)
    sim = f @ centroids.t()  # cosine similarity to unit centroids
    sim = sim.masked_fill((centroids.abs().sum(1) == 0)[None, :], float("-inf"))
    return sim.argmax(1)
