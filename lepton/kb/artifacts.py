"""Mix-in of :class:`lepton.kb.KnowledgeBase`: what else a run folder holds (documents such as a
pipeline stage's results, the map cache) and what can be rebuilt from it without training: the
stored network (:meth:`RunArtifacts.load_method`) and the inputs behind feature-snapshot rows."""
from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .files import KBError, call_writing, read_json, read_npz, write_json, write_npz

_DOC_NAMES = ("stage.json", "evaluation.json")
_ARRAY_NAMES = ("recommendations.npz",)
_INPUTS_LOCK = threading.Lock()
_INPUTS: "OrderedDict[tuple, list]" = OrderedDict()


class RunArtifacts:
    """Mix-in (needs ``run_dir``, ``resolve``, ``_row``, ``load_state``)."""

    # ----- documents ---------------------------------------------------------------------------
    def write_doc(self, run_id: str, name: str, doc: Dict[str, Any]) -> None:
        """Store a JSON document in a run's folder (atomic): ``stage.json`` or ``evaluation.json``.

        Raises
        ------
        KBError
            Another name, or a write error (e.g. a full disk).
        """
        if name not in _DOC_NAMES:
            raise KBError(f"unknown run document {name!r}; use one of {', '.join(_DOC_NAMES)}")
        rid = self.resolve(run_id)
        call_writing(f"{name} of run {rid}", lambda: write_json(self.run_dir(rid) / name, doc))

    def read_doc(self, run_id: str, name: str) -> Optional[Dict[str, Any]]:
        """A document written by :meth:`write_doc`, or ``None`` if the run has none."""
        rid = self.resolve(run_id)
        p = self.run_dir(rid) / name
        return read_json(p, rid) if p.exists() else None

    def write_arrays(self, run_id: str, name: str, arrays: Dict[str, np.ndarray]) -> None:
        """Store named arrays (numbers or unicode strings) in a run's folder (atomic):
        ``recommendations.npz`` (a ranking run's per-user top-10, see
        :func:`lepton.training.ranking.recommendation_arrays`).

        Raises
        ------
        KBError
            Another name, or a write error (e.g. a full disk).
        """
        if name not in _ARRAY_NAMES:
            raise KBError(f"unknown run array file {name!r}; use one of {', '.join(_ARRAY_NAMES)}")
        rid = self.resolve(run_id)
        call_writing(f"{name} of run {rid}", lambda: write_npz(self.run_dir(rid) / name, arrays))

    def read_arrays(self, run_id: str, name: str) -> Optional[Dict[str, np.ndarray]]:
        """Arrays written by :meth:`write_arrays`, or ``None`` if the run has none.

        Raises
        ------
        lepton.kb.files.RunFileError
            The file is damaged.
        """
        rid = self.resolve(run_id)
        p = self.run_dir(rid) / name
        return read_npz(p, rid) if p.exists() else None

    # ----- map cache ----------------------------------------------------------------------------
    def _map_path(self, run_id: str, key: Dict[str, Any]):
        h = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
        name = f"{key.get('kind', 'map')}-{key.get('method', 'x')}-{h}.npz"
        return self.run_dir(self.resolve(run_id)) / "maps" / name, h

    def cached_map(self, run_id: str, key: Dict[str, Any]) -> Optional[np.ndarray]:
        """Map coordinates cached under ``key`` (any JSON-able dict), or ``None``."""
        path, h = self._map_path(run_id, key)
        try:
            with np.load(path, allow_pickle=False) as z:
                return z["coords"] if str(z["key"]) == h else None
        except (OSError, ValueError, KeyError, EOFError):
            return None

    def cache_map(self, run_id: str, key: Dict[str, Any], coords: np.ndarray) -> None:
        """Cache map coordinates ``(N, 2)`` (or ``(F, N, 2)``) under ``key``. A cache: a read-only or
        full disk only costs the next recompute, so a write error is a warning, not an error."""
        import warnings
        path, h = self._map_path(run_id, key)
        try:
            path.parent.mkdir(exist_ok=True)
            write_npz(path, {"coords": np.asarray(coords, np.float32), "key": np.array(h)})
        except OSError as e:
            warnings.warn(f"could not cache the map in {path.parent}: {e}")

    def copy_run(self, run_id: str, other) -> str:
        """Copy a finished run (folder and index row) into another knowledge base ``other``.

        Returns
        -------
        str
            The run id (the same in both).

        Raises
        ------
        KBError
            An unknown or running run, or a write error.
        """
        import shutil
        rid = self.resolve(run_id)
        self._refuse_running(self._row(rid), "copy")
        dest = other.run_dir(rid)
        call_writing(f"a copy of run {rid} in {other.home}", lambda: shutil.copytree(self.run_dir(rid), dest))
        other._reindex(rid, dest)
        return rid

    # ----- rebuilding ---------------------------------------------------------------------------
    def model_spec(self, run_id: str) -> Dict[str, Any]:
        """``input_shape``, ``n_classes``, ``encoder``, ``feature_dim`` of a run's network."""
        rid = self.resolve(run_id)
        meta = read_json(self.run_dir(rid) / "run.json", rid)
        if "model" in meta:
            return dict(meta["model"])
        cfg = meta.get("config", {})  # runs stored before the spec was recorded
        from ..models import resolve_encoder
        shape = meta.get("input_shape") or []
        return {"input_shape": shape, "n_classes": meta.get("n_classes"),
                "encoder": resolve_encoder(cfg.get("encoder", "auto"), shape),
                "feature_dim": int(cfg.get("hparams", {}).get("feature_dim", 128))}

    def load_method(self, run_id: str, parts: Sequence[str] = ("encoder", "transfer", "head"),
                    checkpoint: str = "selected", device: Any = "cpu"):
        """Rebuild a stored network from the run's files alone (no data is loaded).

        Parameters
        ----------
        run_id : str
            Id, unique prefix or ``latest``.
        parts : sequence of str
            Which of ``encoder``, ``transfer``, ``head`` get the stored weights; the others keep a
            fresh initialisation (e.g. ``("encoder", "transfer")`` to transfer features only).
        checkpoint : str
            ``selected``, ``last`` or ``oracle``.
        device : str or torch.device

        Returns
        -------
        lepton.models.TransferNet
            In eval mode; ``net(x)`` gives ``(B, K)`` outputs, ``net.features(x)`` ``(B, D)``.

        Raises
        ------
        KBError
            An unknown part, no such checkpoint, or weights that do not fit the stored shapes.
        """
        from ..models import TransferNet
        bad = sorted(set(parts) - set(TransferNet.PARTS))
        if bad:
            raise KBError(f"unknown model part(s) {', '.join(bad)}; use {', '.join(TransferNet.PARTS)}")
        net = TransferNet.from_spec(self.model_spec(run_id))
        state = self.load_state(run_id, checkpoint)
        own = net.state_dict()
        sub = {k[4:]: v for k, v in state.items() if k.startswith("net.") and k[4:].split(".", 1)[0] in parts}
        wrong = [k for k, v in sub.items() if k not in own or tuple(own[k].shape) != tuple(v.shape)]
        if wrong or not sub:
            raise KBError(f"run {self.resolve(run_id)}: the stored weights do not fit its recorded network "
                          f"({', '.join(wrong[:3]) or 'no weights for ' + ', '.join(parts)})")
        net.load_state_dict({**own, **sub})
        return net.to(device).eval()

    def snapshot_inputs(self, run_id: str, domain_id: int, index: Sequence[int], data_dir=None) -> np.ndarray:
        """The harmonised test inputs behind feature-snapshot rows, exactly as the run saw them.

        The run's domains are loaded and harmonised again from its stored names and roles (all
        of them, in order, so sizes, framing and classes match), and cached for a few runs.

        Parameters
        ----------
        domain_id : int
            A snapshot row's ``domain`` value.
        index : sequence of int
            Rows' ``index`` values (rows of that domain's harmonised test split).

        Returns
        -------
        np.ndarray
            float32 ``(len(index), *input_shape)``.

        Raises
        ------
        KBError
            A domain id or index outside the run's domains; :class:`lepton.data.DataError` when
            a domain cannot be loaded any more (e.g. an upload was removed).
        """
        rid = self.resolve(run_id)
        meta = read_json(self.run_dir(rid) / "run.json", rid)
        names = list(meta.get("domains", []))
        roles = meta.get("roles") or (["source", "target"] + ["eval"] * (len(names) - 2))
        if not 0 <= int(domain_id) < len(names):
            raise KBError(f"run {rid} has {len(names)} domains; there is no domain {domain_id}")
        cfg = meta.get("config", {})
        doms = _harmonised(tuple(names), tuple(roles), data_dir, cfg.get("scaling", "none"),
                           "tokens" if cfg.get("encoder") == "embedding-bag" else "tfidf")
        x = doms[int(domain_id)].x_test
        idx = np.asarray(list(index), dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(x)):
            raise KBError(f"run {rid}: rows outside the {len(x)} test examples of {names[int(domain_id)]!r}")
        return x[idx]


    def snapshot_rows(self, run_id: str, domain_id: int, index: Sequence[int], data_dir=None):
        """The domain behind feature-snapshot rows, read again as loaded (before pairing), and the
        rows of its test split those snapshot rows are.

        Pairing keeps the classes the run's domains share, in the test split's order, so snapshot
        row ``i`` is the ``i``-th test row of a kept class.

        Parameters
        ----------
        domain_id : int
            A snapshot row's ``domain`` value.
        index : sequence of int
            Rows' ``index`` values.

        Returns
        -------
        domain : lepton.data.Domain
        rows : np.ndarray
            int64 ``(len(index),)`` rows of ``domain``'s test split.

        Raises
        ------
        KBError
            A domain id or index outside the run's domains; :class:`lepton.data.DataError` when the
            domain cannot be loaded any more.
        """
        from ..data import load_domain
        rid = self.resolve(run_id)
        meta = read_json(self.run_dir(rid) / "run.json", rid)
        names = list(meta.get("domains", []))
        if not 0 <= int(domain_id) < len(names):
            raise KBError(f"run {rid} has {len(names)} domains; there is no domain {domain_id}")
        d = load_domain(names[int(domain_id)], data_dir)
        keep = set(meta.get("class_names") or d.class_names)
        rows = np.arange(len(d.y_test)) if not d.labelled else np.flatnonzero(
            [d.class_names[y] in keep for y in d.y_test])
        idx = np.asarray(list(index), dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(rows)):
            raise KBError(f"run {rid}: rows outside the {len(rows)} test examples of {names[int(domain_id)]!r}")
        return d, rows[idx]

    def snapshot_texts(self, run_id: str, domain_id: int, index: Sequence[int], data_dir=None) -> Optional[List[str]]:
        """The raw texts behind feature-snapshot rows of a text domain (``None`` for other domains).

        Pairing turns texts into TF-IDF features, so the inputs :meth:`snapshot_inputs` returns
        are vectors; this reads the domain's raw test texts again (:meth:`snapshot_rows`).

        Returns
        -------
        list of str or None

        Raises
        ------
        KBError, lepton.data.DataError
            As :meth:`snapshot_rows`.
        """
        d, rows = self.snapshot_rows(run_id, domain_id, index, data_dir)
        return [str(t) for t in d.x_test[rows]] if d.modality == "text" else None

    def snapshot_meta(self, run_id: str, domain_id: int, index: Sequence[int], data_dir=None) -> Dict[str, list]:
        """The per-row metadata behind feature-snapshot rows (an audio domain's ``speaker``,
        ``gender``, ``accent``, ``path``; ``{}`` for a domain without any).

        Returns
        -------
        dict of str to list of str
            Column name -> one value per row of ``index``.

        Raises
        ------
        KBError, lepton.data.DataError
            As :meth:`snapshot_rows`.
        """
        d, rows = self.snapshot_rows(run_id, domain_id, index, data_dir)
        return {k: [str(v) for v in np.asarray(col)[rows]] for k, col in d.meta("test").items()}


def _harmonised(names: tuple, roles: tuple, data_dir, scaling: str = "none", text_features: str = "tfidf") -> list:
    from ..data import load_domain
    from ..data.pairing import harmonise
    key = (names, roles, str(data_dir), scaling, text_features)
    with _INPUTS_LOCK:
        if key in _INPUTS:
            _INPUTS.move_to_end(key)
            return _INPUTS[key]
    doms, _ = harmonise([load_domain(n, data_dir) for n in names], list(roles), scaling, text_features)
    with _INPUTS_LOCK:
        _INPUTS[key] = doms
        while len(_INPUTS) > 4:
            _INPUTS.popitem(last=False)
    return doms
