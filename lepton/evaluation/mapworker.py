"""A long-lived map process: UMAP / t-SNE / PCA maps of stored runs fitted outside the caller.

umap-learn compiles its numba kernels in every fresh process (30-55 s for the first fit here,
minutes when the machine is busy), so a server keeps *one* map process, warms it at start with a
tiny fit, and sends it every map request; the compiled code and the knowledge base's map cache are
reused for the rest. ``NUMBA_CACHE_DIR`` (default ``$LEPTON_HOME/numba-cache``) keeps what numba can
cache on disk across restarts.

>>> w = MapWorker(kb.home)                                      # doctest: +SKIP
>>> w.submit("map", run_id=rid, epoch=3, method="umap")         # doctest: +SKIP
('pending', None)
"""
from __future__ import annotations

import json
import os
import queue as queue_mod
import threading
import time
from typing import Any, Dict, Optional, Tuple


def _serve(home: str, requests, responses) -> None:
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(home, "numba-cache"))
    from ..kb import KnowledgeBase
    from . import projection
    try:
        responses.put(("ready", projection.warm_up(aligned=True)))
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
            else:
                out = projection.aligned_maps(kb, **kw)
            responses.put(("done", key, out))
        except Exception as e:  # noqa: BLE001 - sent back to the page as a message
            responses.put(("error", key, f"{type(e).__name__}: {e}"))


class MapWorker:
    """One map process per server, started on first use and restarted if it dies.

    Parameters
    ----------
    home : path-like
        The knowledge base folder the maps are read from (and cached in).

    Attributes
    ----------
    ready : threading.Event
        Set once the process has compiled UMAP (its warm-up fit).
    warm_s : float or None
        Seconds the warm-up took in the map process.
    """

    def __init__(self, home):
        self.home = str(home)
        self.ready = threading.Event()
        self.warm_s: Optional[float] = None
        self._lock = threading.Lock()
        self._results: Dict[str, Tuple[str, Any]] = {}
        self._proc = None
        self._req = None
        self._gen = 0  # which process a pending request was sent to

    def start(self) -> None:
        """Start the process (and its warm-up) if it is not running."""
        from ..training.workers import context
        with self._lock:
            if self._proc is not None and self._proc.is_alive():
                return
            ctx = context()
            self._req, resp = ctx.Queue(), ctx.Queue()
            self.ready.clear()
            self._proc = ctx.Process(target=_serve, args=(self.home, self._req, resp), name="lepton-maps", daemon=True)
            self._proc.start()
            self._gen += 1
            for key, (st, _) in list(self._results.items()):  # requests lost with an old process
                if st == "pending":
                    del self._results[key]
            threading.Thread(target=self._read, args=(self._proc, resp, self._gen), name="lepton-maps-reader",
                             daemon=True).start()

    def _read(self, proc, resp, gen: int) -> None:
        while True:
            try:
                msg = resp.get(timeout=1.0)
            except queue_mod.Empty:
                if not proc.is_alive():
                    with self._lock:
                        for key, (st, g) in list(self._results.items()):
                            if st == "pending" and g == gen:
                                self._results[key] = ("error", "the map process stopped unexpectedly; try again")
                    return
                continue
            if msg[0] == "ready":
                self.warm_s = msg[1] if isinstance(msg[1], float) else None
                self.ready.set()
                continue
            with self._lock:
                self._results[msg[1]] = ("done", msg[2]) if msg[0] == "done" else ("error", msg[2])
                done = [k for k, (st, _) in self._results.items() if st != "pending"]
                for k in done[:-64]:  # a few recent maps in memory; the knowledge base caches the rest
                    del self._results[k]

    def submit(self, kind: str = "map", **kw) -> Tuple[str, Any]:
        """Ask for a map; returns ``(status, value)`` without waiting.

        Parameters
        ----------
        kind : str
            ``map`` (:func:`lepton.evaluation.projection.compute_map` keywords: ``run_id``, ``epoch``,
            ``method``, ...) or ``aligned`` (:func:`~lepton.evaluation.projection.aligned_maps`).

        Returns
        -------
        (str, object)
            ``("pending", None)``, ``("done", DataFrame)`` or ``("error", message)``.
        """
        key = json.dumps([kind, kw], sort_keys=True, default=str)
        with self._lock:
            if key in self._results:
                st, value = self._results[key]
                return (st, None) if st == "pending" else (st, value)
        self.start()
        with self._lock:
            if key not in self._results:
                self._results[key] = ("pending", self._gen)
                self._req.put((key, kind, kw))
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
        """Stop the process."""
        with self._lock:
            if self._proc is not None and self._proc.is_alive():
                self._req.put(None)
                self._proc.join(5)
                if self._proc.is_alive():
                    self._proc.kill()
            self._proc = None
