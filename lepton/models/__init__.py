"""Lepton's model parts: encoder E, transfer module T, decoder D, heads, gradient reversal."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from ..registry import Registry

ENCODERS: Registry = Registry("encoder")


class LeNetEncoder(nn.Module):
    """LeNet-style CNN encoder whose size follows the input (LeCun et al., Proc. IEEE 1998).

    ``conv5x5(C->c1) - ReLU - maxpool2 - conv5x5(c1->c2) - ReLU - maxpool2 - dropout - fc(->D) - ReLU``
    with 'same' padding; an input smaller than 16 px skips the second pooling.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)``.
    feature_dim : int
        ``D``, the size of the feature vector.
    channels : tuple of int
        ``(c1, c2)``.

    Shapes
    ------
    ``(B, C, H, W)`` float32 -> ``(B, D)``.
    """

    def __init__(self, input_shape: Sequence[int], feature_dim: int = 128, channels: Tuple[int, int] = (20, 50)):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"LeNetEncoder needs an image shape (C, H, W); got {tuple(input_shape)}")
        c, h, w = input_shape
        c1, c2 = channels
        pool2 = min(h, w) >= 16
        self.conv = nn.Sequential(
            nn.Conv2d(c, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2) if pool2 else nn.Identity(),
        )
        hh, ww = h // 2, w // 2
        if pool2:
            hh, ww = hh // 2, ww // 2
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(c2 * hh * ww, feature_dim), nn.ReLU())
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))  # (B, D)


class MLPEncoder(nn.Module):
    """Multi-layer perceptron encoder for feature vectors (or flattened images).

    Parameters
    ----------
    input_shape : tuple of int
        ``(D_in,)``, or an image shape that is flattened.
    hidden : tuple of int
        Hidden sizes; the last one is the feature dimension ``D``.

    Shapes
    ------
    ``(B, *input_shape)`` -> ``(B, D)``.
    """

    def __init__(self, input_shape: Sequence[int], hidden: Sequence[int] = (256, 128)):
        super().__init__()
        d_in = 1
        for s in input_shape:
            d_in *= int(s)
        layers, prev = [nn.Flatten()], d_in
        for hdim in hidden:
            layers += [nn.Linear(prev, hdim), nn.ReLU()]
            prev = hdim
        self.net = nn.Sequential(*layers)
        self.feature_dim = prev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, D)


ENCODERS.add("lenet", lambda shape, feature_dim=128: LeNetEncoder(shape, feature_dim))
ENCODERS.add("mlp", lambda shape, feature_dim=128: MLPEncoder(shape, (256, feature_dim)))
ENCODERS.add("mlp-784-256-128-64", lambda shape, feature_dim=64: MLPEncoder(shape, (256, 128, 64)))


def build_encoder(name: str, input_shape: Sequence[int], feature_dim: int = 128) -> nn.Module:
    """Build a registered encoder; ``"auto"`` picks ``lenet`` for images and ``mlp`` for vectors.

    Raises
    ------
    lepton.registry.UnknownNameError
        For an unknown encoder name.
    """
    if name == "auto":
        name = "lenet" if len(input_shape) == 3 else "mlp"
    return ENCODERS.get(name)(tuple(input_shape), feature_dim)


class TransferModule(nn.Module):
    """Residual bottleneck adapter initialised to the identity (Houlsby et al., ICML 2019).

    ``T(f) = f + W_up ReLU(W_down f)``, with ``W_up`` (and its bias) initialised to zero so that
    ``T`` starts as the identity and fine-tuning only ``T`` starts from the source model.

    Shapes
    ------
    ``(B, D)`` -> ``(B, D)``.
    """

    def __init__(self, dim: int, bottleneck: int = 32):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f + self.up(torch.relu(self.down(f)))  # (B, D)


class Decoder(nn.Module):
    """Decoder D reconstructing the input from features: ``D -> 256 -> prod(input_shape)``, sigmoid
    output for images (pixels in [0, 1]), linear for feature vectors.

    Shapes
    ------
    ``(B, D)`` -> ``(B, *input_shape)``.
    """

    def __init__(self, feature_dim: int, input_shape: Sequence[int], hidden: int = 256):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        n_out = 1
        for s in self.input_shape:
            n_out *= s
        self.net = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_out))
        self.image = len(self.input_shape) == 3

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        out = self.net(f)
        if self.image:
            out = torch.sigmoid(out)
        return out.reshape(len(f), *self.input_shape)


class GradientReversalFunction(torch.autograd.Function):
    """Identity forward, ``-lambda * grad`` backward (Ganin & Lempitsky, ICML 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lambd: float) -> torch.Tensor:  # type: ignore[override]
        ctx.lambd = float(lambd)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return -ctx.lambd * grad, None


def grad_reverse(x: torch.Tensor, lambd: float = 1.0) -> torch.Tensor:
    """Gradient reversal: ``y = x`` forward, ``dL/dx = -lambd * dL/dy`` backward.

    Parameters
    ----------
    x : torch.Tensor
        Any shape.
    lambd : float
        Reversal coefficient (a Python float, not a NumPy scalar type).
    """
    return GradientReversalFunction.apply(x, float(lambd))


class DomainDiscriminator(nn.Module):
    """MLP domain classifier ``D -> h -> h -> 1`` (logit of "source") as in DANN.

    Shapes
    ------
    ``(B, D)`` -> ``(B,)`` logits.
    """

    def __init__(self, feature_dim: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f).reshape(-1)  # (B,)


class TransferNet(nn.Module):
    """Encoder E, transfer module T and classifier head: ``logits = head(T(E(x)))``.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)`` or ``(D_in,)``.
    n_classes : int
        Number of classes ``K``.
    encoder : str
        Registered encoder name or ``"auto"``.
    feature_dim : int
        ``D``.

    Shapes
    ------
    ``forward``: ``(B, *input_shape)`` -> ``(B, K)``; ``features``: -> ``(B, D)``.
    """

    def __init__(self, input_shape: Sequence[int], n_classes: int, encoder: str = "auto", feature_dim: int = 128):
        super().__init__()
        self.encoder = build_encoder(encoder, input_shape, feature_dim)
        d = self.encoder.feature_dim
        self.transfer = TransferModule(d)
        self.head = nn.Linear(d, n_classes)
        self.feature_dim = d

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.transfer(self.encoder(x))  # (B, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, K)


__all__ = ["ENCODERS", "LeNetEncoder", "MLPEncoder", "TransferModule", "Decoder", "grad_reverse",
           "GradientReversalFunction", "DomainDiscriminator", "TransferNet", "build_encoder"]
