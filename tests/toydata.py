"""Small seeded domains for tests (imported as ``from toydata import make_domain``)."""
import numpy as np


def make_domain(name="toy", n=40, k=3, shape=(1, 8, 8), seed=0, modality="image"):
    """A small seeded Domain with class-dependent means (learnable)."""
    from lepton.data import Domain
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.uniform(0, 0.3, size=(n, *shape)).astype(np.float32)
    flat = x.reshape(n, -1)
    for c in range(k):
        flat[y == c, c::k] += 0.6
    x = np.clip(flat.reshape(n, *shape), 0, 1).astype(np.float32)
    half = n // 2
    return Domain(name, modality, x[:half], y[:half].astype(np.int64), x[half:], y[half:].astype(np.int64),
                  [str(c) for c in range(k)])
