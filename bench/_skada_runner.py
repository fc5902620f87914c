"""One skada run for ``bench/peer_skada.py`` (runs inside the skada virtualenv; not part of Lepton).

    python bench/_skada_runner.py --data pair.npz --method dann --epochs 20 --seed 0 --lr 0.001 --reg 1

Reads the harmonised arrays Lepton trained on, builds the *same* network (Lepton's TransferNet for
the pair, seeded alike), trains it with skada's method for the same epochs and batch size, and prints
one JSON line: the target test accuracy of the last epoch and the seconds spent training.
"""
import argparse
import json
import sys
import time
from pathlib import Path

T0 = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # lepton, for the network definition only


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--method", required=True, choices=["source-only", "dann", "deep-coral"])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--reg", type=float, default=1.0)
    a = ap.parse_args()

    import numpy as np
    import torch
    from torch import nn
    torch.set_num_threads(1)
    from skada.deep import DANN, DeepCoral, SourceOnly

    from lepton.models import TransferNet

    z = np.load(a.data)
    xs, ys, xt, xtt, ytt = (z[k] for k in ("xs", "ys", "xt", "xt_test", "yt_test"))
    torch.manual_seed(a.seed)

    class Net(nn.Module):
        """Lepton's network; skada calls forward with ``sample_weight``."""

        def __init__(self):
            super().__init__()
            self.net = TransferNet(xs.shape[1:], int(ys.max()) + 1, "auto", 128, modality=str(z["modality"]))
            self.feature_dim = self.net.feature_dim

        def forward(self, x, sample_weight=None):
            return self.net(x)

    net = Net()

    class DomainClassifier(nn.Module):
        """skada's DANN discriminator with a sigmoid: the shipped one ends its one logit in a softmax
        (always 1), so its domain loss has no gradient and DANN does not adapt."""

        def __init__(self, d: int):
            super().__init__()
            self.classifier = nn.Sequential(nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                            nn.Linear(256, 1), nn.Sigmoid())

        def forward(self, x, sample_weight=None):
            from skada.deep.modules import GradientReversalLayer
            return self.classifier(GradientReversalLayer.apply(x, 1.0)).squeeze(-1)

    common = dict(layer_name="net.transfer", max_epochs=a.epochs, batch_size=a.batch_size, train_split=None,
                  optimizer=torch.optim.Adam, optimizer__weight_decay=a.weight_decay, lr=a.lr, device="cpu",
                  verbose=0)
    if a.method == "source-only":
        model = SourceOnly(net, **common)
    elif a.method == "dann":
        model = DANN(net, reg=a.reg, domain_classifier=DomainClassifier(net.feature_dim), **common)
    else:
        model = DeepCoral(net, reg=a.reg, **common)
    x = np.concatenate([xs, xt]).astype(np.float32)
    y = np.concatenate([ys, -np.ones(len(xt), ys.dtype)]).astype(np.int64)
    dom = np.concatenate([np.ones(len(xs)), -np.ones(len(xt))]).astype(np.int64)
    t = time.perf_counter()
    model.fit(x, y, sample_domain=dom)
    train_s = time.perf_counter() - t
    pred = model.predict(xtt.astype(np.float32), sample_domain=-np.ones(len(xtt), np.int64))
    print(json.dumps({"target_acc": float((pred == ytt).mean()), "train_s": train_s,
                      "process_s_inside": time.perf_counter() - T0}))


if __name__ == "__main__":
    main()
