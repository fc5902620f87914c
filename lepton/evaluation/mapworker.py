"""A long-lived map process: UMAP / t-SNE / PCA maps of stored runs fitted outside the caller.

umap-learn compiles its numba kernels in every fresh process (30-55 s for the first fit here,
minutes when the machine is busy), so a server keeps *one* map process, warms it at start with a
tiny fit, and sends it every map request; the compiled code and the knowledge base's map cache are
reused for the rest. ``NUMBA_CACHE_DIR`` (default ``$LEPTON_HOME/numba-cache``) keeps what numba can
cache on disk across restarts.

If the process dies while it serves a request (a native crash in umap-learn or scikit-learn, or a
kill), the request it was working on is answered with an error naming the signal, the requests
queued behind it are sent again to a fresh process, and the next request starts that process. The
process works through its requests in the order they were sent, so the one it was working on is
the oldest unanswered one. A crash answer is kept for :data:`CRASH_RETRY_S` seconds (the page shows
it instead of refitting in a loop); a request after that tries again.

>>> w = MapWorker(kb.home)                                      # doctest: +SKIP
>>> w.submit("map", run_id=rid, epoch=3, method="umap")         # doctest: +SKIP
('pending', None)

It also scores stored encoders for a new target (``kind="rank"``:
:func:`lepton.evaluation.transferability.rank_encoders`), which runs every stored model forward and
so stays out of the server process too.
"""
from __future__ import annotations

import json
import os
import queue as queue_mod
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

#: Seconds a crash answer is kept before the same request is tried again.
CRASH_RETRY_S = 30.0
_MAX_SENDS = 3  # a request is sent to at most this many processes (then answered with the crash)


def _describe(kind: str, kw: Dict[str, Any]) -> str:
    if kind == "rank":
        return f"stored encoders for target {kw.get('target')}"
    from .projection import _LABELS
    method = kw.get("method", "umap")
    label = _LABELS.get(method, str(method))
    what = f"aligned {label} maps" if kind == "aligned" else f"the {label} map"
    what += f" of run {kw.get('run_id')}"
    if kw.get("epoch") is not None:
        what += f" at epoch {kw['epoch']}"
    return what


def _serve(home: str, requests, responses, warm: bool = True) -> None:
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(home, "numba-cache"))
    from ..kb import KnowledgeBase
    from . import projection
    try:
        responses.put(("ready", projection.warm_up(aligned=True) if warm else 0.0))
    except Exception as e:  # noqa: BLE001 - warm-up is best effort
        responses.put(("ready", f"warm-up failed: {e}"))
    kb = KnowledgeBase(home, repair=False)
    while True:
        req = requests.get()
        if req is None:
            break
        key, kind, kw = req
        try:
            if kind == "map":
                out = projection.compute_map(kb, **kw)
            elif kind == "rank":  # LogME / LEEP / H-score of stored encoders: torch forward passes, kept off the server
                from .transferability import rank_encoders
                out = rank_encoders(kb, **kw)
            else:
                out = projection.aligned_maps(kb, **kw)
            responses.put(("done", key, out))
        except ValueError as e:  # written for the user (bad request, degenerate features, unknown run)
            responses.put(("error", key, str(e)))
        except Exception as e:  # noqa: BLE001 - sent back to the page as a message
            responses.put(("error", key, f"{type(e).__name__}: {e}"))


def _verb(kind: str) -> str:
    return "scoring" if kind == "rank" else "fitting"


def _retry(kind: str, restarts: bool = False) -> str:
    if kind == "rank":
        return ("it restarts for the next request: " if restarts else "") + "try again, or rank fewer runs"
    return ("it restarts for the next map: " if restarts else "") + "try PCA, another epoch or another run"


def _exit_words(exitcode: Optional[int]) -> str:
    from .projection import describe_exit
    return describe_exit(exitcode)


class MapWorker:
    """One map process per server, started on first use and restarted if it dies.

    Parameters
    ----------
    home : path-like
        The knowledge base folder the maps are read from (and cached in).
    warm_up : bool
        Compile UMAP with a tiny fit when the process starts (default); ``False`` starts it
        ready at once (tests, PCA / t-SNE only use).

    Attributes
    ----------
    ready : threading.Event
        Set once the process has compiled UMAP (its warm-up fit).
    warm_s : float or None
        Seconds the warm-up took in the map process.
    """

    def __init__(self, home, warm_up: bool = True):
        self.home = str(home)
        self.warm_up = bool(warm_up)
        self.ready = threading.Event()
        self.warm_s: Optional[float] = None
        self._lock = threading.Lock()
        self._results: Dict[str, Tuple[str, Any]] = {}  # key -> ("pending", gen) | ("done", df) | ("error", msg)
        self._requests: Dict[str, Tuple[str, Dict[str, Any]]] = {}  # pending key -> (kind, kw), to send again
        self._sent: Dict[int, List[str]] = {}  # process generation -> keys in the order they were sent
        self._sends: Dict[str, int] = {}  # pending key -> processes it was sent to
        self._crashed: Dict[str, float] = {}  # key answered with a crash -> when
        self._ready_gen = 0  # the last generation that finished its warm-up
        self._closed = False
        self._proc = None
        self._req = None
        self._gen = 0  # which process a pending request was sent to

    @property
    def pid(self) -> Optional[int]:
        """The map process's id, or ``None`` when it is not running."""
        proc = self._proc
        return proc.pid if proc is not None and proc.is_alive() else None

    def start(self) -> None:
        """Start the process (and its warm-up) if it is not running."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        from ..training.workers import context
        if self._proc is not None and self._proc.is_alive():
            return
        self._closed = False
        ctx = context()
        self._req, resp = ctx.Queue(), ctx.Queue()
        self.ready.clear()
        self._gen += 1
        self._sent[self._gen] = []
        self._proc = ctx.Process(target=_serve, args=(self.home, self._req, resp, self.warm_up), name="lepton-maps", daemon=True)
        self._proc.start()
        # requests still pending on an older process are answered (or sent again) by its reader
        threading.Thread(target=self._read, args=(self._proc, resp, self._gen), name="lepton-maps-reader",
                         daemon=True).start()

    def _send_locked(self, key: str, kind: str, kw: Dict[str, Any]) -> None:
        self._start_locked()
        self._results[key] = ("pending", self._gen)
        self._requests[key] = (kind, kw)
        self._sends[key] = self._sends.get(key, 0) + 1
        self._sent[self._gen].append(key)
        self._req.put((key, kind, kw))

    def _answer_locked(self, key: str, status: str, value: Any) -> None:
        self._results[key] = (status, value)
        self._requests.pop(key, None)
        self._sends.pop(key, None)
        done = [k for k, (st, _) in self._results.items() if st != "pending"]
        for k in done[:-64]:  # a few recent maps in memory; the knowledge base caches the rest
            del self._results[k]
            self._crashed.pop(k, None)

    def _read(self, proc, resp, gen: int) -> None:
        while True:
            try:
                msg = resp.get(timeout=0.5)
            except queue_mod.Empty:
                if proc.is_alive():
                    continue
                while True:  # what the process sent before it died is still in the pipe
                    try:
                        self._handle(resp.get(timeout=0.1), gen)
                    except (queue_mod.Empty, EOFError, OSError):
                        break
                self._died(proc, gen)
                return
            self._handle(msg, gen)

    def _handle(self, msg, gen: int) -> None:
        if msg[0] == "ready":
            self.warm_s = msg[1] if isinstance(msg[1], float) else None
            with self._lock:
                self._ready_gen = max(self._ready_gen, gen)
                if gen == self._gen:
                    self.ready.set()
            return
        with self._lock:
            st = self._results.get(msg[1])
            if st is not None and st[0] == "pending" and st[1] == gen:
                self._answer_locked(msg[1], "done" if msg[0] == "done" else "error", msg[2])
            sent = self._sent.get(gen, [])
            while sent and self._results.get(sent[0], ("",))[0] != "pending":
                sent.pop(0)

    def _died(self, proc, gen: int) -> None:
        """Answer the request the dead process was working on; send the ones queued behind it again."""
        proc.join(1)
        how = _exit_words(proc.exitcode)
        with self._lock:
            waiting = [k for k in self._sent.pop(gen, [])
                       if self._results.get(k, ("",))[0] == "pending" and self._results[k][1] == gen]
            if not waiting:
                return
            if self._closed:
                for k in waiting:
                    self._answer_locked(k, "error", "the map process was stopped; try again")
                return
            if self._ready_gen < gen:  # died while starting: no request is to blame, none can be served
                for k in waiting:
                    self._answer_locked(k, "error", f"the map process crashed ({how}) while starting (its UMAP "
                                        "warm-up); try again, or use PCA maps")
                    self._crashed[k] = time.monotonic()
                return
            first, rest = waiting[0], waiting[1:]
            kind, kw = self._requests.get(first, ("map", {}))
            self._answer_locked(first, "error", f"the map process crashed ({how}) while {_verb(kind)} "
                                f"{_describe(kind, kw)}; {_retry(kind, restarts=True)}")
            self._crashed[first] = time.monotonic()
            for k in rest:
                kind, kw = self._requests[k]
                if self._sends.get(k, 0) >= _MAX_SENDS:
                    self._answer_locked(k, "error", f"the map process crashed ({how}) again while {_verb(kind)} "
                                        f"{_describe(kind, kw)}; {_retry(kind)}")
                    self._crashed[k] = time.monotonic()
                else:
                    self._send_locked(k, kind, kw)  # innocent: queued behind the crash, sent to a fresh process

    def submit(self, kind: str = "map", **kw) -> Tuple[str, Any]:
        """Ask for a map; returns ``(status, value)`` without waiting.

        Parameters
        ----------
        kind : str
            ``map`` (:func:`lepton.evaluation.projection.compute_map` keywords: ``run_id``, ``epoch``,
            ``method``, ...), ``aligned`` (:func:`~lepton.evaluation.projection.aligned_maps`) or
            ``rank`` (:func:`~lepton.evaluation.transferability.rank_encoders` keywords: ``target``,
            ``runs``, ...; pass ``runs`` explicitly, so a newly stored run asks a new question
            rather than reading a cached answer).

        Returns
        -------
        (str, object)
            ``("pending", None)``, ``("done", DataFrame)`` or ``("error", message)``.
        """
        key = json.dumps([kind, kw], sort_keys=True, default=str)
        with self._lock:
            t = self._crashed.get(key)
            if t is not None and time.monotonic() - t > CRASH_RETRY_S:  # a crash answer, old: try again
                self._results.pop(key, None)
                self._crashed.pop(key, None)
            if key not in self._results:
                self._send_locked(key, kind, kw)
            st, value = self._results[key]
            return (st, None) if st == "pending" else (st, value)

    def wait(self, kind: str = "map", timeout: float = 120.0, **kw) -> Tuple[str, Any]:
        """:meth:`submit`, then wait up to ``timeout`` seconds for the answer."""
        t0 = time.monotonic()
        out = self.submit(kind, **kw)
        while out[0] == "pending" and time.monotonic() - t0 < timeout:
            time.sleep(0.05)
            out = self.submit(kind, **kw)
        return out

    def close(self) -> None:
        """Stop the process (requests still pending are answered with an error)."""
        with self._lock:
            self._closed = True
            if self._proc is not None and self._proc.is_alive():
                self._req.put(None)
                self._proc.join(5)
                if self._proc.is_alive():
                    self._proc.kill()
            self._proc = None
