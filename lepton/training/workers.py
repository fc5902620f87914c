"""Child processes for heavy work: a training run or a pipeline runs in its own process and sends
its progress back as small messages, so a server (the app) only draws and polls, and a native crash
in a child cannot take it down.

On Linux the children fork from a *forkserver* that has imported torch and the core once, so a run
starts in well under a second; elsewhere they are spawned.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from typing import Any, Dict, Optional

from .callbacks import Callback

STEP_EVERY_S = 0.1  # at most ten step messages a second: the page polls once a second

_CTX = None


def context():
    """The multiprocessing context of the workers (forkserver preloading the core, else spawn)."""
    global _CTX
    if _CTX is None:
        if "forkserver" in mp.get_all_start_methods():
            _CTX = mp.get_context("forkserver")
            _CTX.set_forkserver_preload(["lepton.training.workers", "lepton.training._preload"])
        else:
            _CTX = mp.get_context("spawn")
    return _CTX


def _noop() -> None:
    pass


def warm() -> float:
    """Start (and wait for) one empty worker so the forkserver has imported the core; seconds taken."""
    t0 = time.perf_counter()
    p = context().Process(target=_noop, daemon=True)
    p.start()
    p.join(120)
    return time.perf_counter() - t0


class EventSender(Callback):
    """Training callback sending ``("start" | "step" | "epoch", ...)`` messages to a queue."""

    def __init__(self, queue):
        self.q, self._last = queue, 0.0

    def on_run_start(self, run) -> None:
        self.q.put(("start", {"run_id": run.run_id, "total": run.total_steps, "steps_per_epoch": run.steps_per_epoch,
                              "config": run.config.to_dict(), "notes": list(run.notes)}))

    def on_step_end(self, run, step, epoch, losses) -> None:
        now = time.monotonic()
        if now - self._last >= STEP_EVERY_S or step == run.total_steps or step % run.steps_per_epoch == 0:
            self._last = now
            self.q.put(("step", step, epoch, dict(losses)))

    def on_epoch_end(self, run, epoch, metrics) -> None:
        self.q.put(("epoch", epoch, dict(metrics)))


def _throttled(queue):
    last = [0.0]

    def send(e: Dict[str, Any]) -> None:
        if e.get("event") == "step":
            now = time.monotonic()
            if now - last[0] < STEP_EVERY_S and e.get("step") != e.get("total_steps"):
                return
            last[0] = now
        queue.put(("event", e))
    return send


def child_main(kind: str, payload: Dict[str, Any], home: Optional[str], data_dir: Optional[str], queue, stop) -> None:
    """Entry point of a worker process: run ``payload`` and report through ``queue``; never raises.

    Messages: ``start``/``step``/``epoch`` (runs), ``event`` (pipeline progress), then exactly one of
    ``("end", summary_or_result)`` or ``("error", message, traceback)``.
    """
    from .jobs import explain_error
    try:
        from .runtime import use_training_threads
        use_training_threads()
        from ..data import user_domains
        from ..kb import KnowledgeBase
        kb = KnowledgeBase(home) if home else None
        user_domains.load_user_domains(home)
        if kind == "run":
            from ..config import RunConfig
            from .run import train
            res = train(RunConfig.from_dict(payload), kb=kb, callbacks=[EventSender(queue)], stop_event=stop,
                        data_dir=data_dir, record=kb is not None)
            queue.put(("end", {**res.summary(), "run_id": res.run_id}))
        else:
            from ..pipeline import run_pipeline
            args = dict(payload)
            res = run_pipeline(args.pop("domains"), args.pop("target"), args.pop("stages"), args.pop("epochs"),
                               args.pop("seed"), args.pop("k"), progress=_throttled(queue), stop_event=stop,
                               data_dir=data_dir, kb=kb, record=kb is not None, **args)
            queue.put(("end", res))
    except BaseException as e:  # noqa: BLE001 - reported, never raised: the parent shows the message
        queue.put(("error", explain_error(e), traceback.format_exc()))
    finally:
        queue.close()
        queue.join_thread()
        os._exit(0)  # skip interpreter teardown of torch's threads: the message is already sent
