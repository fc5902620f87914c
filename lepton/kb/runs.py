"""Run-folder lifecycle of the knowledge base: begin, record, finish, delete, export, repair.

A mix-in of :class:`lepton.kb.store.KnowledgeBase` (which supplies the SQLite helpers); kept
apart so each module stays small. Order of writes, so a crash never leaves a run that looks
finished: folder and ``run.json`` -> ``running`` row -> per-epoch files -> checkpoints ->
``summary.json`` -> final status row (last).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
import warnings
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from . import procs
from .files import TMP_PREFIX, KBError, RunFileError, call_writing, read_json, write_json, write_npz, write_state

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_GRACE_S = 120.0  # a folder younger than this may be a run being created right now
TRASH_PREFIX = ".trash-"


def new_run_id() -> str:
    """A sortable unique id, e.g. ``20250101-120000-3fa2c1`` (local time + 24 random bits)."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def _num(v: Any) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _label(source: Any) -> Any:
    """``"a + b"`` for a list of source domains (the index column), the name for one."""
    return " + ".join(map(str, source)) if isinstance(source, (list, tuple)) else source


class RunFolders:
    """Mix-in: the file side of a run (needs ``home``, ``runs_dir``, ``_db``, ``_insert``, ``_update``,
    ``_row``, ``resolve``)."""

    def run_dir(self, run_id: str) -> Path:
        """Folder of a run id (not checked to exist).

        Raises
        ------
        KBError
            For an id that is not a plain name (no paths).
        """
        if not _ID_RE.match(str(run_id)):
            raise KBError(f"invalid run id {run_id!r}; see the stored runs with `python -m lepton kb list`")
        return self.runs_dir / str(run_id)

    def run_config(self, run_id: str) -> Dict[str, Any]:
        """The stored config of a run (``run.json``'s ``config``; what :class:`RunConfig` wrote).

        Raises
        ------
        KBError
            Invalid id; ``RunFileError`` (a ``KBError``) when ``run.json`` is missing or damaged.
        """
        return dict(read_json(self.run_dir(run_id) / "run.json", run_id).get("config", {}))

    # ----- recording --------------------------------------------------------------------------
    def begin_run(self, config: Mapping[str, Any], meta: Mapping[str, Any], parent: Optional[str] = None) -> str:
        """Create the folder and a ``running`` row (with this process's pid, host and start time).

        Parameters
        ----------
        config : dict
            ``RunConfig.to_dict()``.
        meta : dict
            Stored beside it in ``run.json``: environment, harmonisation, domains, class names.
        parent : str, optional
            Run id whose weights initialised this run.

        Returns
        -------
        str
            The new run id.

        Raises
        ------
        KBError
            The folder or files cannot be written (e.g. a full disk).
        """
        rid = new_run_id()
        d = self.run_dir(rid)
        created = datetime.now().astimezone().isoformat(timespec="microseconds")  # ties would make the order random
        doc = {**dict(meta), "run_id": rid, "created": created, "config": dict(config), "parent": parent,
               "format": 1}

        def write() -> None:
            (d / "features").mkdir(parents=True)
            (d / "checkpoints").mkdir()
            write_json(d / "run.json", doc)

        try:
            call_writing(f"the new run folder {d}", write)
        except KBError:
            shutil.rmtree(d, ignore_errors=True)
            raise
        pid = os.getpid()
        self._insert({"run_id": rid, "created": created, "status": "running", "method": config.get("method"),
                      "source": _label(config.get("source")), "target": config.get("target"),
                      "epochs": config.get("epochs"), "seed": config.get("seed"), "parent": parent, "error": "",
                      "pid": pid, "host": procs.hostname(), "start_token": procs.start_token(pid),
                      "heartbeat": time.time(), "epochs_done": 0})
        return rid

    def beat(self, run_id: str, **values: Any) -> None:
        """Heartbeat of a running run, optionally with ``epochs_done`` / ``target_acc_last``."""
        self._update(run_id, only_running=True, heartbeat=time.time(), **values)

    def write_history(self, run_id: str, rows: List[Dict[str, Any]]) -> None:
        """Replace ``history.json`` with the epoch rows so far (atomic).

        Raises
        ------
        KBError
            On a write error (e.g. ``ENOSPC``).
        """
        call_writing(f"the history of run {run_id}", lambda: write_json(self.run_dir(run_id) / "history.json", rows))

    def write_features(self, run_id: str, epoch: int, arrays: Dict[str, np.ndarray]) -> None:
        """Store one feature snapshot ``features/epoch_EEEE.npz`` (see :meth:`load_features`).

        Raises
        ------
        KBError
            On a write error (e.g. ``ENOSPC``).
        """
        p = self.run_dir(run_id) / "features" / f"epoch_{int(epoch):04d}.npz"
        call_writing(f"the epoch-{epoch} feature snapshot of run {run_id}", lambda: write_npz(p, arrays))

    def finish_run(self, run_id: str, result, keep=("selected", "last")) -> None:
        """Write checkpoints and ``summary.json``, then the final status row (last).

        Parameters
        ----------
        result : lepton.training.RunResult
        keep : sequence of str
            Which of ``result.states`` to store (``selected``, ``last``, ``oracle``). Checkpoints of
            the same epoch share one file (a hard link where the file system has them).

        Raises
        ------
        KBError
            On a write error; the run is then marked ``failed`` with the message.
        """
        d = self.run_dir(run_id)
        states = {n: s for n, s in (result.states or {}).items() if n in keep}
        try:
            written: Dict[Any, Path] = {}
            for name, state in states.items():
                path = d / "checkpoints" / f"{name}.safetensors"
                epoch = (result.checkpoints or {}).get(name, {}).get("epoch", name)
                call_writing(f"the {name!r} checkpoint of run {run_id}",
                             lambda: _link_or_write(written.get(epoch), path, state))
                written.setdefault(epoch, path)
            summary = result.summary()
            summary["checkpoint_files"] = sorted(states)
            call_writing(f"the summary of run {run_id}", lambda: write_json(d / "summary.json", summary, fsync=True))
        except KBError as e:
            self.mark_failed(run_id, str(e))
            raise
        ck = result.checkpoints or {}
        get = lambda name, key: _num(ck.get(name, {}).get(key))  # noqa: E731
        task = getattr(result.config, "task", "classification")
        doc = {"task": task, "metric": {"classification": "accuracy", "ranking": "ndcg@10"}.get(task, task),
               "checkpoints": {n: {k: _num(v) if k != "epoch" else v for k, v in c.items()} for n, c in ck.items()}}
        self._update(run_id, status=result.status, error=result.error or "", task=task,
                     metrics=json.dumps(doc, allow_nan=False, default=str),
                     source_acc=get("selected", "source_acc"), target_acc=get("selected", "target_acc"),
                     target_acc_last=get("last", "target_acc"), target_acc_oracle=get("oracle", "target_acc"),
                     wall_time_s=_num(result.wall_time_s), epochs_done=len(result.history), heartbeat=time.time(),
                     flags=",".join(getattr(result, "flags", []) or []))

    # ----- delete / export --------------------------------------------------------------------
    def _refuse_running(self, row: Dict[str, Any], what: str) -> None:
        if row["status"] == "running" and procs.process_alive(row["pid"], row["host"], row["start_token"],
                                                              row["heartbeat"]):
            raise KBError(f"run {row['run_id']} is still running (pid {row['pid']} on {row['host']}); "
                          f"stop it before you {what} it")

    def delete_run(self, run_id: str) -> None:
        """Delete a run: its folder is moved aside, its row removed, then the folder erased, so an
        interruption leaves no orphan that the next open cannot clear.

        Raises
        ------
        UnknownRunError, KBError
            Unknown id, or the run is still running.
        """
        row = self._row(run_id)
        rid = row["run_id"]
        self._refuse_running(row, "delete")
        d = self.run_dir(rid)
        trash = self.runs_dir / f"{TRASH_PREFIX}{rid}.{secrets.token_hex(3)}"
        if d.exists():
            os.replace(d, trash)
        with self._db(write=True) as con:
            con.execute("DELETE FROM runs WHERE run_id = ?", (rid,))
        shutil.rmtree(trash, ignore_errors=True)

    def export_run(self, run_id: str, out_path: Optional[os.PathLike] = None) -> Path:
        """Zip a run's folder (without the ``maps/`` cache) to ``out_path`` (atomic).

        Parameters
        ----------
        out_path : path-like, optional
            Default ``<run_id>.zip`` in the current folder. Members are ``<run_id>/...``;
            unzipped into ``$LEPTON_HOME/runs/`` the run is re-indexed on the next open.

        Returns
        -------
        pathlib.Path

        Raises
        ------
        KBError
            The run is still running, its folder is missing, or the zip cannot be written.
        """
        row = self._row(run_id)
        rid = row["run_id"]
        self._refuse_running(row, "export")
        d = self.run_dir(rid)
        if not (d / "run.json").is_file():
            raise RunFileError(f"run {rid}: its folder {d} is missing or incomplete; nothing to export")
        out = Path(out_path if out_path is not None else f"{rid}.zip").expanduser().absolute()
        tmp = out.with_name(f"{TMP_PREFIX}{out.name}.{secrets.token_hex(3)}")

        def write() -> None:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for p in sorted(d.rglob("*")):
                    rel = p.relative_to(d)
                    if p.is_file() and rel.parts[0] != "maps" and not p.name.startswith(TMP_PREFIX):
                        zf.write(p, f"{rid}/{rel.as_posix()}")
            os.replace(tmp, out)

        try:
            call_writing(f"the export {out}", write)
        finally:
            if tmp.exists():
                tmp.unlink()
        return out

    # ----- repair -----------------------------------------------------------------------------
    def repair(self) -> List[str]:
        """Reconcile the index and the folders after crashes (run on open).

        * ``running`` rows whose process is gone -> ``failed`` with the reason;
        * rows without a folder -> dropped;
        * folders without a row -> re-indexed from ``summary.json`` (an imported export) or as
          ``failed`` from ``run.json``; unreadable ones (older than two minutes) are removed;
        * leftovers of interrupted deletes and temporary files -> removed.

        Returns
        -------
        list of str
            One sentence per change (also in ``self.repairs``; folder fixes are also warned).
        """
        msgs = [f"run {r} was left running by a process that is gone; marked failed" for r in self.reap_stale()]
        with self._db() as con:
            rows = {r[0]: r[1] for r in con.execute("SELECT run_id, status FROM runs")}
        names = {p.name: p for p in self.runs_dir.iterdir()} if self.runs_dir.is_dir() else {}
        for name, p in names.items():
            if name.startswith(TRASH_PREFIX) or (name.startswith(TMP_PREFIX) and _old(p)):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        for rid, status in rows.items():
            if rid not in names and status != "running":
                with self._db(write=True) as con:
                    con.execute("DELETE FROM runs WHERE run_id = ? AND status != 'running'", (rid,))
                msgs.append(f"run {rid} had no folder; its index row was dropped")
        for name, p in names.items():
            if name in rows or name.startswith(".") or not p.is_dir() or not _ID_RE.match(name) or not _old(p):
                continue
            msgs.append(self._reindex(name, p))
        for m in msgs:
            if "folder" in m:
                warnings.warn(f"knowledge base repair: {m}")
        self.repairs = msgs
        return msgs

    def _reindex(self, rid: str, d: Path) -> str:
        try:
            meta = read_json(d / "run.json", rid)
            summary = read_json(d / "summary.json", rid) if (d / "summary.json").exists() else None
        except RunFileError:
            shutil.rmtree(d, ignore_errors=True)
            return f"run folder {rid} had no index row and no readable run.json; removed"
        cfg = meta.get("config", {})
        status = (summary or {}).get("status")
        status = status if status in ("completed", "stopped", "failed") else "failed"
        error = (summary or {}).get("error") or ("" if summary else "the run folder had no index row (interrupted "
                                                                      "before it was recorded); re-indexed as failed")
        ck = (summary or {}).get("checkpoints", {})
        get = lambda name, key: _num(ck.get(name, {}).get(key))  # noqa: E731
        try:
            self._insert({"run_id": rid, "created": meta.get("created") or "", "status": status,
                          "method": cfg.get("method"), "source": _label(cfg.get("source")), "target": cfg.get("target"),
                          "epochs": cfg.get("epochs"), "seed": cfg.get("seed"), "parent": meta.get("parent"),
                          "error": error, "source_acc": get("selected", "source_acc"),
                          "target_acc": get("selected", "target_acc"), "target_acc_last": get("last", "target_acc"),
                          "target_acc_oracle": get("oracle", "target_acc"),
                          "wall_time_s": _num((summary or {}).get("wall_time_s")),
                          "epochs_done": len((summary or {}).get("history", [])),
                          "task": cfg.get("task", "classification")})
        except Exception as e:  # e.g. another process re-indexed it first
            return f"run folder {rid} could not be re-indexed ({e})"
        return f"run folder {rid} had no index row; re-indexed as {status}"


def _link_or_write(same: Optional[Path], path: Path, state) -> None:
    """``path`` as a hard link to ``same`` (a checkpoint of the same weights), else written."""
    if same is not None:
        try:
            if path.exists():
                path.unlink()
            os.link(same, path)
            return
        except OSError:
            pass  # no hard links here (or a race): write a copy
    write_state(path, state)


def _old(p: Path) -> bool:
    try:
        return time.time() - p.stat().st_mtime > _GRACE_S
    except OSError:
        return False
