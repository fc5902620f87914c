"""Shared test helpers: small seeded domains and a stand-in training loop (``from toydata import ...``)."""
import time

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


def fake_fit(step_s=0.01, steps_per_epoch=3, raise_exc=None, fail_at=None):
    """A stand-in for lepton.training.train driving the callbacks like the real loop (no torch)."""
    from types import SimpleNamespace

    from lepton.training.loop import RunResult

    def fit(config, kb=None, callbacks=(), stop_event=None, data_dir=None, record=True, **kw):
        if raise_exc is not None:
            raise raise_exc
        run = SimpleNamespace(config=config, total_steps=steps_per_epoch * config.epochs,
                              steps_per_epoch=steps_per_epoch, history=[], run_id=None, notes=[])
        for cb in callbacks:
            cb.on_run_start(run)
        status, step = "completed", 0
        for epoch in range(1, config.epochs + 1):
            for _ in range(steps_per_epoch):
                if stop_event is not None and stop_event.is_set():
                    status = "stopped"
                    break
                step += 1
                time.sleep(step_s)
                if fail_at == step:
                    return RunResult(config, "failed", f"loss 'cls' became nan at step {step}", run.history)
                for cb in callbacks:
                    cb.on_step_end(run, step, epoch, {"cls": 1.0 / step, "domain": 0.69})
            if status == "stopped":
                break
            row = {"epoch": epoch, "source_acc": 0.6 + 0.05 * epoch, "target_acc": 0.3 + 0.05 * epoch,
                   "losses": {"cls": 1.0 / epoch, "domain": 0.69}}
            run.history.append(row)
            for cb in callbacks:
                cb.on_epoch_end(run, epoch, row)
        table = [{"domain": config.source_label, "role": "source", "split": "test", "checkpoint": "selected",
                  "accuracy": 0.7, "n": 540},
                 {"domain": config.target, "role": "target", "split": "test", "checkpoint": "selected",
                  "accuracy": 0.4, "n": 540}]
        checkpoints = {}
        if run.history:  # like the loop's: the label-free choice is not the last epoch here
            pick = lambda r: {"epoch": r["epoch"], "source_acc": r["source_acc"], "target_acc": r["target_acc"]}  # noqa: E731
            checkpoints = {"selected": pick(run.history[max(0, len(run.history) - 2)]), "last": pick(run.history[-1]),
                           "oracle": pick(max(run.history, key=lambda r: r["target_acc"]))}
        result = RunResult(config, status, "", run.history, checkpoints=checkpoints, table=table)
        for cb in callbacks:
            cb.on_run_end(run, result)
        return result

    return fit


def assert_seeded_transform(fn, x):
    """``fn(x, generator)`` keeps the shape, gives the same output for the same seed and another for
    another seed; returns the output for seed 1."""
    import torch
    a = fn(x, torch.Generator().manual_seed(1))
    b = fn(x, torch.Generator().manual_seed(1))
    c = fn(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    return a
