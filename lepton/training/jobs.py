"""Background training jobs: a process-wide, thread-safe registry of runs in worker processes.

The app (or a notebook) starts a run with :meth:`JobManager.start` and polls
:meth:`Job.snapshot`. Each run trains in a child process (:mod:`lepton.training.workers`); a light
thread of the caller's process only copies the child's progress messages into the job, so a busy
server (Streamlit runs a full garbage collection after every script run) cannot starve training,
and a crash of the child marks the job failed instead of taking the server down. Each job records its run in the
knowledge base through :func:`lepton.training.train` (the one way to run), so the run
shows up on the Explore and Runs pages, and a reloaded page or a second browser tab finds the
running job again through :meth:`JobManager.list`.

Example
-------
>>> jm = JobManager(kb=False)
>>> job_id = jm.start(RunConfig("digits", "digits-rotated", "dann", epochs=2))  # doctest: +SKIP
>>> jm.get(job_id).snapshot()["status"]                                            # doctest: +SKIP
'running'
"""
from __future__ import annotations

import logging
import math
import threading
import time
import traceback
import uuid
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from ..config import RunConfig
from .callbacks import Callback

log = logging.getLogger(__name__)

ACTIVE = ("starting", "running", "stopping")


def explain_error(exc: BaseException) -> str:
    """A one-paragraph message for a person: what went wrong and what to do (no traceback).

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    str
    """
    from ..data import DataError
    from ..registry import UnknownNameError

    msg = str(exc).strip() or type(exc).__name__
    if isinstance(exc, (DataError, UnknownNameError)):
        return msg[0].upper() + msg[1:]
    if isinstance(exc, MemoryError) or "out of memory" in msg.lower():
        return ("The run ran out of memory. Lower the batch size or the feature size, pick smaller domains, "
                "or stop other runs first.")
    if isinstance(exc, ValueError):
        return f"Invalid setting: {msg}. Change it and start again."
    return (f"The run stopped on an unexpected error ({type(exc).__name__}: {msg}). Try again; if it "
            "happens again, report it with the server log, which holds the details.")


def check_config(config: RunConfig, data_dir=None, kb=None) -> List[Dict[str, str]]:
    """Problems with a choice of domains, method and settings, before anything trains.

    The run's own :func:`lepton.training.plan` is made (domains loaded, cached, and paired exactly
    as training will), so the pre-flight check and training cannot disagree: the same domain as
    source and target, classes dropped, a method that needs labelled target examples the target
    cannot give, invalid hyper-parameters or device, an unknown ``init_from`` run.

    Parameters
    ----------
    config : RunConfig
    data_dir : path-like, optional
    kb : lepton.kb.KnowledgeBase, optional
        To resolve ``config.init_from``.

    Returns
    -------
    list of dict
        ``{"level": "error" | "warning" | "info", "message": str}``; an ``error`` means
        :meth:`JobManager.start` would fail.
    """
    from .plan import check
    return check(config, data_dir, kb)


class Job:
    """One training run in a background thread; all fields are guarded by ``lock``.

    Attributes
    ----------
    id : str
    config : RunConfig
    status : str
        ``starting`` -> ``running`` -> (``stopping``) -> ``completed`` | ``stopped`` | ``failed``.
    phase : str
        What the worker is doing, in words (``loading data``, ``training``, ``saving``, ...).
    step, total : int
        Optimisation steps done and planned.
    history : list of dict
        The loop's per-epoch rows (``epoch``, ``source_acc``, ``target_acc``, ``losses``, ...).
    result : RunResult or None
        When finished (``states`` dropped once stored in the knowledge base).
    error : str
        A message for people (see :func:`explain_error`); the traceback goes to the log.
    run_id : str or None
        Knowledge-base id, known once the run has started.
    owner : str or None
        Who started it (an app session's token; ``None``: the process itself, e.g. the CLI or a
        test). Only the owner, a teacher or the process may stop it (:meth:`JobManager.stop`).
    created, started, first_step_at, finished : float
        ``time.time()`` stamps (seconds); ``started`` is when training began.
    """

    kind = "run"

    def __init__(self, config: RunConfig, label: str = "", owner: Optional[str] = None):
        self.id = uuid.uuid4().hex[:10]
        self.config = config
        self.label = label
        self.owner = owner
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread: Optional[threading.Thread] = None
        self.status, self.phase, self.error = "starting", "loading data", ""
        self.step, self.total, self.epoch = 0, 0, 0
        self.history: List[Dict[str, Any]] = []
        self.last_losses: Dict[str, float] = {}
        self.result = None
        self.run_id: Optional[str] = None
        self.created = time.time()
        self.started: Optional[float] = None
        self.first_step_at: Optional[float] = None
        self.finished: Optional[float] = None
        self.pid: Optional[int] = None  # the worker process, when the job runs in one

    def _set(self, **kw) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, v)

    def on_message(self, msg: tuple) -> None:
        """Apply one progress message of the run (``start``, ``step``, ``epoch``; see :mod:`.workers`)."""
        kind = msg[0]
        with self.lock:
            if kind == "start":
                info = msg[1]
                self.status = "stopping" if self.stop_event.is_set() else "running"
                self.phase, self.total, self.started = "training", info["total"], time.time()
                self.run_id, self.config = info["run_id"], RunConfig.from_dict(info["config"])
                self._steps_per_epoch = max(1, int(info["steps_per_epoch"]))
            elif kind == "step":
                _, self.step, self.epoch, losses = msg
                self.last_losses = dict(losses)
                if self.first_step_at is None:
                    self.first_step_at = time.time()
                if self.step % getattr(self, "_steps_per_epoch", 1) == 0:
                    self.phase = "evaluating"
            elif kind == "epoch":
                self.history.append(dict(msg[2]))
                self.phase = "training" if msg[1] < self.config.epochs else "saving"

    @property
    def title(self) -> str:
        """``"dann: digits → digits-rotated"``: what the job trains, in words."""
        return f"{self.config.method}: {self.config.source_label} → {self.config.target}"

    @property
    def active(self) -> bool:
        """Whether the worker is still running."""
        return self.status in ACTIVE

    def snapshot(self) -> Dict[str, Any]:
        """A consistent copy of the job's state (plain data, safe to use without the lock).

        Returns
        -------
        dict
            ``id``, ``config`` (dict), ``status``, ``phase``, ``step``, ``total``, ``epoch``,
            ``epochs``, ``fraction`` (0..1), ``history`` (list copy), ``last_losses``, ``error``,
            ``run_id``, ``elapsed_s``, ``remaining_s`` (None until estimable), ``created``, ``finished``,
            ``flags`` (the finished run's ``diverged``/``collapsed``/... flags).
        """
        with self.lock:
            now = self.finished or time.time()
            elapsed = now - self.created
            remaining = None
            if self.started and self.step and self.total and self.active:
                per_step = (time.time() - self.started) / self.step
                remaining = per_step * (self.total - self.step)
            return {"id": self.id, "kind": self.kind, "label": self.label, "config": self.config.to_dict(), "status": self.status,
                    "phase": self.phase, "step": self.step, "total": self.total, "epoch": self.epoch,
                    "epochs": self.config.epochs, "fraction": (self.step / self.total) if self.total else 0.0,
                    "history": [dict(r) for r in self.history], "last_losses": dict(self.last_losses),
                    "error": self.error, "run_id": self.run_id, "elapsed_s": elapsed, "remaining_s": remaining,
                    "created": self.created, "finished": self.finished,
                    "first_update_s": (self.first_step_at - self.created) if self.first_step_at else None,
                    "flags": list(getattr(getattr(self, "result", None), "flags", None) or [])}


class _JobProgress(Callback):
    """Copies the loop's progress into the job (in-thread jobs; worker processes send the same as messages)."""

    def __init__(self, job: Job):
        self.job = job

    def on_run_start(self, run) -> None:
        self.job.on_message(("start", {"run_id": run.run_id, "total": run.total_steps,
                                       "steps_per_epoch": run.steps_per_epoch, "config": run.config.to_dict()}))

    def on_step_end(self, run, step, epoch, losses) -> None:
        self.job.on_message(("step", step, epoch, losses))

    def on_epoch_end(self, run, epoch, metrics) -> None:
        self.job.on_message(("epoch", epoch, metrics))


class JobManager:
    """Process-wide registry of background training jobs (thread-safe).

    Parameters
    ----------
    kb : KnowledgeBase, None or False
        Where runs are recorded. ``None``: the default :class:`lepton.kb.KnowledgeBase`;
        ``False``: do not record.
    data_dir : path-like, optional
        Benchmark data folder passed to :func:`lepton.training.train`.
    max_active : int
        Most runs training at once; :meth:`start` refuses more.
    fit_fn : callable, optional
        The run function (default :func:`lepton.training.train`, same signature); tests pass a fake.
    pipeline_fn : callable, optional
        The pipeline function (default :func:`lepton.pipeline.run_pipeline`); tests pass a fake.
    workers : str
        ``process`` (each job in a child process), ``thread`` (in a thread of this process) or
        ``auto``: processes, unless a fake ``fit_fn``/``pipeline_fn`` is given.
    """

    def __init__(self, kb: Any = None, data_dir=None, max_active: int = 4, fit_fn: Optional[Callable] = None,
                 pipeline_fn: Optional[Callable] = None, workers: str = "auto"):
        if workers not in ("auto", "process", "thread"):
            raise ValueError(f"workers must be auto, process or thread, got {workers!r}")
        self._lock = threading.Lock()
        self._jobs: Dict[str, Job] = {}
        self.data_dir, self.max_active, self._fit, self._pipeline = data_dir, int(max_active), fit_fn, pipeline_fn
        self.workers = ("thread" if fit_fn or pipeline_fn else "process") if workers == "auto" else workers
        self._kb = kb
        self._kb_ready = kb is not None

    @property
    def kb(self):
        """The knowledge base runs are recorded in, or ``None``."""
        if not self._kb_ready:
            with self._lock:
                if not self._kb_ready:
                    from ..kb import KnowledgeBase
                    self._kb = KnowledgeBase()
                    self._kb_ready = True
        return self._kb or None

    def start(self, config: RunConfig, label: str = "", owner: Optional[str] = None) -> str:
        """Start training ``config`` in a background thread.

        ``owner`` (an app session's token) is who may stop it besides a teacher and this process
        (:meth:`stop`); ``None``: only a teacher or this process.

        Returns
        -------
        str
            The job id (see :meth:`get`).

        Raises
        ------
        ValueError
            An invalid config (checked before the thread starts), or too many active runs.
        """
        config.validate()
        if self.workers == "process":
            return self._launch(Job(config, label, owner), lambda j: self._in_child(j, "run", j.config.to_dict()))
        return self._launch(Job(config, label, owner), self._work)

    def start_pipeline(self, domains: Sequence[str], target: str, stages: Union[str, Sequence[str]],
                       epochs_per_stage: int = 2, seed: int = 0, k: int = 5, label: str = "",
                       owner: Optional[str] = None, **kw) -> str:
        """Start :func:`lepton.pipeline.run_pipeline` in a background thread (see :class:`PipelineJob`).

        Parameters
        ----------
        domains, target, stages, epochs_per_stage, seed, k
            As in :func:`lepton.pipeline.run_pipeline`.
        owner : str, optional
            Who may stop it besides a teacher and this process (as in :meth:`start`).
        **kw
            Other keyword arguments of ``run_pipeline`` (``draws``, ``batch_size``, ``device``, ...).

        Returns
        -------
        str
            The job id.

        Raises
        ------
        ValueError
            Stages out of order or unknown, bad domains or k (checked before the thread starts;
            see :func:`check_pipeline`), or too many active runs.
        """
        specs = _pipeline_specs(domains, target, stages, k, kw.get("eval_ks"), kw.get("init_from"))
        job = PipelineJob(list(domains), target, specs, int(epochs_per_stage), int(seed), int(k), label, kw)
        job.owner = owner
        if self.workers == "process":
            payload = {"domains": list(domains), "target": target, "stages": job.stages_text,
                       "epochs": int(epochs_per_stage), "seed": int(seed), "k": int(k), **kw}
            return self._launch(job, lambda j: self._in_child(j, "pipeline", payload))
        return self._launch(job, self._work_pipeline)

    def _launch(self, job: "Job", work: Callable[["Job"], None]) -> str:
        with self._lock:
            n = sum(j.active for j in self._jobs.values())
            if n >= self.max_active:
                raise ValueError(f"{n} runs are already training; wait for one to finish or stop one")
            self._jobs[job.id] = job
        if self.workers == "process":
            from .workers import context
            job.stop_event = context().Event()
        t = threading.Thread(target=work, args=(job,), name=f"lepton-job-{job.id}", daemon=True)
        job.thread = t
        t.start()
        return job.id

    def warm(self) -> float:
        """Start the worker machinery now (the forkserver imports torch and the core once), so the
        first :meth:`start` shows progress quickly; seconds taken (0 for thread workers)."""
        if self.workers != "process":
            return 0.0
        from .workers import warm
        return warm()

    def get(self, job_id: str) -> Job:
        """The job with this id.

        Raises
        ------
        KeyError
            Unknown id.
        """
        with self._lock:
            if job_id not in self._jobs:
                raise KeyError(f"no job {job_id!r}")
            return self._jobs[job_id]

    def list(self) -> List[Job]:
        """All jobs, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def active(self) -> List[Job]:
        """Jobs still running, newest first."""
        return [j for j in self.list() if j.active]

    def owned(self, owner: str) -> List[Job]:
        """Jobs started by ``owner`` (an app session's token), newest first."""
        return [j for j in self.list() if owner is not None and j.owner == owner]

    @staticmethod
    def may_stop(job: Job, by: Optional[str] = None, teacher: bool = False) -> bool:
        """Whether ``by`` (a session token; ``None``: this process) may stop ``job``: its owner, a
        teacher, or the process itself."""
        return by is None or teacher or (job.owner is not None and job.owner == by)

    def stop(self, job_id: str, by: Optional[str] = None, teacher: bool = False) -> None:
        """Ask a job to stop after its current step; it ends as ``stopped`` (and is stored).

        Parameters
        ----------
        job_id : str
        by : str, optional
            The app session asking (its token); ``None``: this process (the CLI, a test), which may
            stop any job.
        teacher : bool
            The session is a teacher's (``LEPTON_TEACHER_KEY``): it may stop every job.

        Raises
        ------
        KeyError
            Unknown job id.
        PermissionError
            ``by`` is neither the job's owner nor a teacher: other sessions may watch a run, not stop it.
        """
        job = self.get(job_id)
        if not self.may_stop(job, by, teacher):
            raise PermissionError(f"{job.title} was started in another browser session: you can watch it, but only that session "
                                  "(or the teacher) can stop it")
        job.stop_event.set()
        with job.lock:
            if job.status in ("starting", "running"):
                job.status = "stopping"

    def wait(self, job_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Block until the job ends (or ``timeout`` seconds pass); return its snapshot."""
        job = self.get(job_id)
        if job.thread is not None:
            job.thread.join(timeout)
        return job.snapshot()

    def wait_first_step(self, job_id: str, timeout: float = 1.0) -> bool:
        """Block up to ``timeout`` seconds until the job has taken its first step (or ended), so a
        page can show progress in the same rerun that started it; whether it did."""
        job, end = self.get(job_id), time.monotonic() + float(timeout)
        while time.monotonic() < end:
            s = job.snapshot()
            if s["step"] >= 1 or not job.active:
                return True
            time.sleep(0.02)
        return False

    def forget(self, job_id: str) -> None:
        """Drop a finished job from the registry (its stored run stays in the knowledge base)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and not job.active:
                del self._jobs[job_id]

    # ----- the worker: never calls the UI -------------------------------------------------------
    def _work(self, job: Job) -> None:
        try:
            from .runtime import use_training_threads
            use_training_threads()  # OpenMP's thread count is per thread: this worker thread's own
            from ..data import user_domains
            kb = self.kb
            user_domains.load_user_domains(getattr(kb, "home", None))  # uploads of this home, if not yet known
            train = self._fit
            if train is None:
                from .run import train
            if job.config.init_from and kb is None:
                raise ValueError("init_from names a stored run, but this job manager has no knowledge base")
            result = train(job.config, kb=kb, callbacks=[_JobProgress(job)], stop_event=job.stop_event,
                           data_dir=self.data_dir, record=kb is not None)
            if kb is not None:
                result.states = {}  # the weights are in the knowledge base; free the memory
            result.plan = None
            _finish_run(job, result)
        except BaseException as e:  # the thread must always end in a final state
            log.error("lepton job %s failed:\n%s", job.id, traceback.format_exc())
            job._set(status="failed", error=explain_error(e), phase="done", finished=time.time())

    def _in_child(self, job: "Job", kind: str, payload: Dict[str, Any]) -> None:
        """Run ``payload`` in a worker process and copy its messages into ``job`` until it ends."""
        import queue as queue_mod

        from .loop import RunResult
        from .workers import child_main, context
        ctx = context()
        q = ctx.Queue()
        kb = self.kb
        if job.config.init_from and kb is None:
            job._set(status="failed", error=explain_error(ValueError(
                "init_from names a stored run, but this job manager has no knowledge base")), phase="done",
                finished=time.time())
            return
        home = str(kb.home) if kb is not None else None
        data_dir = str(self.data_dir) if self.data_dir is not None else None
        proc = ctx.Process(target=child_main, args=(kind, payload, home, data_dir, q, job.stop_event),
                           name=f"lepton-{kind}-{job.id}", daemon=True)
        try:
            proc.start()
        except Exception as e:  # noqa: BLE001 - e.g. no memory for a new process
            job._set(status="failed", error=explain_error(e), phase="done", finished=time.time())
            return
        job._set(pid=proc.pid)
        end = None
        while end is None:
            try:
                msg = q.get(timeout=0.25)
            except queue_mod.Empty:
                if not proc.is_alive():
                    try:
                        msg = q.get(timeout=1.0)  # a last message may still be in the pipe
                    except queue_mod.Empty:
                        end = ("crash", proc.exitcode)
                        break
                else:
                    continue
            if msg[0] in ("end", "error"):
                end = msg
            elif msg[0] == "event":
                job.on_event(msg[1])
            else:
                job.on_message(msg)
        proc.join(30)
        if end[0] == "end" and kind == "run":
            d = end[1]
            res = RunResult.from_summary(d)
            _finish_run(job, res)
        elif end[0] == "end":
            _finish_pipeline(job, end[1])
        elif end[0] == "error":
            log.error("lepton job %s failed in its worker:\n%s", job.id, end[2])
            job._set(status="failed", error=end[1], phase="done", finished=time.time())
            if kind == "pipeline":
                _close_stage_rows(job)
        else:
            if kb is not None:
                kb.reap_stale()  # the child's running row becomes failed, with the reason
            job._set(status="failed", phase="done", finished=time.time(),
                     error=f"The training process ended unexpectedly (exit code {end[1]}); nothing else was affected. "
                           "Try again; if it happens again, lower the batch size or report it with the server log.")
            if kind == "pipeline":
                _close_stage_rows(job)

    def _work_pipeline(self, job: "PipelineJob") -> None:
        try:
            from .runtime import use_training_threads
            use_training_threads()
            from ..data import user_domains
            kb = self.kb
            user_domains.load_user_domains(getattr(kb, "home", None))
            run = self._pipeline
            if run is None:
                from ..pipeline import run_pipeline as run
            job._set(status="stopping" if job.stop_event.is_set() else "running", started=time.time())
            res = run(job.domains, job.target, job.stages_text, job.epochs_per_stage, job.seed, job.k,
                      progress=job.on_event, stop_event=job.stop_event, data_dir=self.data_dir,
                      kb=kb, record=kb is not None, **job.options)
            _finish_pipeline(job, res)
        except BaseException as e:  # the thread must always end in a final state
            log.error("lepton pipeline job %s failed:\n%s", job.id, traceback.format_exc())
            job._set(status="failed", error=explain_error(e), phase="done", finished=time.time())
            _close_stage_rows(job)


def _finish_run(job: "Job", result) -> None:
    msg = f"Training failed: {result.error}." if result.status == "failed" else ""
    job._set(status=result.status, result=result, error=msg, phase="done", run_id=result.run_id or job.run_id,
             finished=time.time())


def _finish_pipeline(job: "PipelineJob", res) -> None:
    msg = f"The pipeline failed: {res.error}." if res.status == "failed" else ""
    job._set(status=res.status, result=res, error=msg, phase="done", finished=time.time())
    _close_stage_rows(job)


def _close_stage_rows(job: "PipelineJob") -> None:
    with job.lock:
        for row in job.stages:
            if row["status"] in ("pending", "running"):
                row["status"] = "not run" if row["status"] == "pending" else job.status


def _pipeline_specs(domains, target, stages, k, eval_ks=None, init_from=None):
    """Parse and check a pipeline's stages and inputs (no data loaded); raises ValueError / KeyError."""
    from ..strategies.stages import check_inputs, parse_stages
    specs = parse_stages(stages)
    ev = next((s for s in specs if s.kind == "evaluate"), None)
    ks = list((ev.hparams.get("ks") if ev else None) or eval_ks or [int(k)])
    check_inputs(list(domains), target, specs, int(k), ks, init_from)
    return specs


def check_pipeline(domains: Sequence[str], target: str, stages: Union[str, Sequence[str]], k: int = 5,
                   eval_ks: Optional[Sequence[int]] = None, init_from: Optional[str] = None) -> List[Dict[str, str]]:
    """Problems with a pipeline's stages, domains and k, before anything trains (no data loaded).

    Returns
    -------
    list of dict
        ``{"level": "error", "message": str}`` (empty when :meth:`JobManager.start_pipeline` would start).
    """
    try:
        _pipeline_specs(domains, target, stages, k, eval_ks, init_from)
    except (ValueError, KeyError) as e:
        msg = explain_error(e)
        if "order" in msg or "valid stages" in msg or "kind" in msg:
            from ..strategies.stages import describe_stages
            if "valid stages" not in msg:
                msg += f" Valid stages by kind: {describe_stages()}."
        return [{"level": "error", "message": msg}]
    return []


class PipelineJob(Job):
    """A :func:`lepton.pipeline.run_pipeline` in a background thread, with one status row per stage.

    Attributes
    ----------
    stages : list of dict
        Per stage, in order: ``index``, ``stage`` (label), ``name``, ``kind``, ``status`` (``pending``,
        ``running``, ``completed``, ``stopped``, ``failed``, ``not run``), ``run_id``, ``parent``,
        ``epoch``, ``epochs``, ``step``, ``total``, ``fraction``, ``last`` (last epoch row),
        ``metrics`` (see :class:`lepton.pipeline.StageResult`), ``wall_time_s``, ``error``.
    result : PipelineResult or None
    """

    kind = "pipeline"

    def __init__(self, domains, target, specs, epochs_per_stage, seed, k, label="", options=None):
        first = next((s.name for s in specs if s.kind != "evaluate"), "source-only")
        super().__init__(RunConfig(tuple(domains), target, first, epochs=epochs_per_stage, seed=seed), label)
        self.domains, self.target, self.k, self.seed = domains, target, k, seed
        self.epochs_per_stage, self.options = epochs_per_stage, dict(options or {})
        self.stages_text = [s.label() for s in specs]
        self.phase = "preparing data"
        self.stages: List[Dict[str, Any]] = [
            {"index": i, "stage": s.label(), "name": s.name, "kind": s.kind, "status": "pending", "run_id": None,
             "parent": None, "epoch": 0, "epochs": None if s.kind == "evaluate" else (s.epochs or epochs_per_stage),
             "step": 0, "total": 0, "fraction": 0.0, "last": {}, "metrics": {}, "wall_time_s": None, "error": ""}
            for i, s in enumerate(specs)]

    @property
    def title(self) -> str:
        """``"pipeline digits + digits-small → digits-rotated"``."""
        return f"pipeline {' + '.join(self.domains)} → {self.target}"

    def on_event(self, e: Dict[str, Any]) -> None:
        """The pipeline's ``progress`` callable (runs in the worker thread)."""
        ev = e.get("event")
        with self.lock:
            if ev == "done":
                return
            row = self.stages[e["index"]]
            if ev == "stage_start":
                row.update(status="running", epochs=e.get("epochs"), started=time.time())
                self.phase = f"stage {e['index'] + 1}/{e['n_stages']}: {row['stage']}"
            elif ev == "stage_run":
                row.update(run_id=e.get("run_id"), total=e.get("total_steps", 0))
                self.run_id = e.get("run_id") or self.run_id
            elif ev == "step":
                row.update(step=e["step"], total=e["total_steps"], fraction=e["fraction"], epoch=e["epoch"])
                self.last_losses = dict(e.get("losses") or {})
                if self.first_step_at is None:
                    self.first_step_at = time.time()
            elif ev == "epoch":
                row.update(epoch=e["epoch"], last=dict(e["metrics"]))
                self.history.append({"stage": row["stage"], **e["metrics"]})
            elif ev == "stage_end":
                r = e["result"]
                row.update(status=r.status, run_id=r.run_id, parent=r.parent, metrics=r.metrics,
                           wall_time_s=r.wall_time_s, error=r.error,
                           fraction=1.0 if r.status == "completed" else row["fraction"])

    def snapshot(self) -> Dict[str, Any]:
        """:meth:`Job.snapshot` plus ``domains``, ``target``, ``k``, ``stages`` (copies of the rows) and
        ``fraction`` over all stages."""
        snap = super().snapshot()
        with self.lock:
            rows = [{**r, "last": dict(r["last"]), "metrics": dict(r["metrics"])} for r in self.stages]
        snap.update(domains=list(self.domains), target=self.target, k=self.k, stages=rows,
                    fraction=sum(r["fraction"] for r in rows) / max(1, len(rows)))
        return snap


def available_devices() -> List[str]:
    """Device names this machine can train on: ``auto``, ``cpu`` and any CUDA / MPS device."""
    import torch
    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def format_seconds(s: Optional[float]) -> str:
    """``"1 min 05 s"``/``"42 s"``/``"-"`` for a duration in seconds."""
    if s is None or not math.isfinite(s):
        return "-"
    s = max(0, int(round(s)))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"
