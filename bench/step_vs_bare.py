"""Lepton's training step against a bare PyTorch loop of the same network, alternated in one run.

    LEPTON_DATA_DIR=../shared/data python bench/step_vs_bare.py [--source mnist --target usps --steps 100 --rounds 5]

A: ``Method.update`` of source-only (Lepton's step: batch assembly by the loop's streams, forward,
loss, backward, Adam). B: the same TransferNet, the same batches, ``cross_entropy`` + Adam written
out by hand. One torch thread; samples per second of each, and the ratio A / B of the medians.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default="mnist")
    ap.add_argument("--target", default="usps")
    ap.add_argument("--method", default="source-only")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    from lepton.config import RunConfig
    from lepton.models import TransferNet
    from lepton.training import plan
    from lepton.training.loop import _Streams

    run = plan(RunConfig(args.source, args.target, args.method, batch_size=64))
    streams = _Streams(run)
    m = run.method
    net = TransferNet(run.source.input_shape, run.source.n_classes, m.net.spec["encoder"], 128)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=5e-4)
    _, xs, ys = streams.sources[0]
    bs = 64

    def lepton(n):
        m.train()
        t = time.perf_counter()
        for i in range(n):
            m.update(streams.next(), i)
        return n * bs / (time.perf_counter() - t)

    def bare(n):
        net.train()
        g = torch.Generator().manual_seed(0)
        t = time.perf_counter()
        for _ in range(n):
            i = torch.randint(len(ys), (bs,), generator=g)
            loss = F.cross_entropy(net(xs[i]), ys[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return n * bs / (time.perf_counter() - t)

    lepton(5), bare(5)  # warm-up
    a, b = [], []
    for _ in range(args.rounds):
        a.append(lepton(args.steps))
        b.append(bare(args.steps))
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"{args.method} {args.source} -> {args.target}, batch {bs}, {args.steps} steps x {args.rounds} rounds "
          f"alternated, one torch thread: Lepton {ma:.0f} samples/s, bare loop {mb:.0f} samples/s, "
          f"ratio {ma / mb:.2f} (rounds: " + ", ".join(f"{x / y:.2f}" for x, y in zip(a, b)) + ")")


if __name__ == "__main__":
    main()
