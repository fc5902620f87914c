"""The knowledge base: an SQLite index plus one folder per run.

Layout of ``$LEPTON_HOME`` (default: the platform's user data folder)::

    index.sqlite              one row per run (WAL mode; PRAGMA user_version = schema version)
    runs/<run_id>/run.json    config, parent, environment, harmonisation, domains, classes
                 history.json per-epoch rows as the training loop produces them
                 features/epoch_0003.npz   feature snapshots (allow_pickle=False)
                 checkpoints/{selected,last,oracle}.safetensors   raw state_dicts
                 summary.json RunResult.summary() (written before the final status row)
                 maps/        cached map coordinates (a cache; not exported)

A run is complete only when its status row says so, and that row is written last. Opening the
store repairs what a crash can leave: ``running`` rows whose process is gone become ``failed``
with the reason, rows without a folder are dropped, folders without a row are re-indexed (or
removed when unreadable), and half-deleted folders are cleared.
"""
from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from ..paths import default_home
from . import procs
from .files import KBError, RunFileError, read_json, read_npz, read_state
from .artifacts import RunArtifacts
from .housekeeping import Housekeeping
from .runs import RunFolders

SCHEMA_VERSION = 3
STATUSES = ("running", "completed", "stopped", "failed")
CHECKPOINTS = ("selected", "last", "oracle")
LIST_COLUMNS = ["run_id", "created", "status", "method", "source", "target", "epochs", "seed", "source_acc",
                "target_acc", "target_acc_last", "target_acc_oracle", "wall_time_s", "parent", "error",
                "epochs_done", "task", "flags"]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, created TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'stopped', 'failed')),
  method TEXT, source TEXT, target TEXT, epochs INTEGER, seed INTEGER, epochs_done INTEGER DEFAULT 0,
  source_acc REAL, target_acc REAL, target_acc_last REAL, target_acc_oracle REAL, wall_time_s REAL,
  parent TEXT, error TEXT DEFAULT '', pid INTEGER, host TEXT, start_token TEXT, heartbeat REAL, updated REAL,
  task TEXT DEFAULT 'classification', metrics TEXT, flags TEXT DEFAULT '')
"""
# Schema 2 (from 1): the task of a run and its metrics as a JSON document, so a task with other
# metrics (ranking) needs no schema change; the indexed accuracy columns stay for listing.
# Schema 3 (from 2): ``flags``, comma-separated warnings about a run's numbers (``diverged``, ``chance``).
_MIGRATIONS = {1: ("ALTER TABLE runs ADD COLUMN task TEXT DEFAULT 'classification'",
                   "ALTER TABLE runs ADD COLUMN metrics TEXT"),
               2: ("ALTER TABLE runs ADD COLUMN flags TEXT DEFAULT ''",)}
HOW_TO_LIST = "see the stored runs with `python -m lepton kb list`"


class UnknownRunError(KBError):
    """No run has this id; the message says how to list the ids."""


class KnowledgeBase(RunFolders, RunArtifacts, Housekeeping):
    """Stored runs: an embedded SQLite index (WAL, busy timeout) and one folder per run.

    Safe to use from several threads and processes at once: every call opens its own short
    connection, writers take ``BEGIN IMMEDIATE`` and readers never block on them (WAL).

    Parameters
    ----------
    home : path-like, optional
        The folder (created if missing). Default :func:`default_home`.
    repair : bool
        Reconcile the index with the run folders on open (see the module docstring).

    Attributes
    ----------
    home : pathlib.Path
    repairs : list of str
        What the last :meth:`repair` changed, one sentence each.

    Raises
    ------
    KBError
        The database was written by a newer lepton (naming both schema versions), is not an
        SQLite database, or the folder cannot be created.
    """

    def __init__(self, home: Optional[os.PathLike] = None, repair: bool = True):
        self.home = Path(home if home is not None else default_home()).expanduser().absolute()
        self.runs_dir = self.home / "runs"
        self.db_path = self.home / "index.sqlite"
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise KBError(f"cannot create the knowledge base folder {self.home}: {e}; set LEPTON_HOME") from e
        self.repairs: List[str] = []
        self._init_db()
        if repair:
            self.repair()

    # ----- database -------------------------------------------------------------------------
    @contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        try:
            con = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as e:
            raise KBError(f"cannot open the knowledge base index {self.db_path}: {e}") from e
        try:
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA busy_timeout = 30000")
            con.execute("PRAGMA synchronous = NORMAL")
            if write:
                con.execute("BEGIN IMMEDIATE")
            yield con
            if write:
                con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.rollback()
            raise
        finally:
            con.close()

    def _init_db(self) -> None:
        try:
            with self._db() as con:
                if self._check_version(con) == SCHEMA_VERSION and con.execute(
                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone():
                    return  # ready: readers never take the write lock
                con.execute("PRAGMA journal_mode = WAL")
                con.execute("BEGIN IMMEDIATE")
                v = self._check_version(con)
                if v >= 1 and con.execute(
                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone():
                    for step in range(v, SCHEMA_VERSION):
                        for sql in _MIGRATIONS[step]:
                            con.execute(sql)
                con.execute(_SCHEMA)
                con.execute("CREATE INDEX IF NOT EXISTS runs_created ON runs (created)")
                con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                con.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            raise KBError(f"the knowledge base index {self.db_path} is not a usable SQLite database ({e}); "
                          "move it away (the run folders stay) or set LEPTON_HOME to another folder") from e

    def _check_version(self, con: sqlite3.Connection) -> int:
        v = con.execute("PRAGMA user_version").fetchone()[0]
        if v > SCHEMA_VERSION:
            raise KBError(f"the knowledge base at {self.home} was written by a newer lepton (schema version {v}); "
                          f"this lepton reads schema version {SCHEMA_VERSION}: upgrade lepton or set LEPTON_HOME "
                          "to another folder")
        return v

    def journal_mode(self) -> str:
        """The SQLite journal mode of the index (``"wal"``)."""
        with self._db() as con:
            return con.execute("PRAGMA journal_mode").fetchone()[0]

    # ----- ids ------------------------------------------------------------------------------
    def resolve(self, run_id: str) -> str:
        """The full id of ``run_id``: an exact id, a unique prefix, a unique suffix of at least 6
        characters (the short id the app shows), or ``latest``.

        Raises
        ------
        UnknownRunError
            No (or more than one) run matches; the message says how to list the ids.
        """
        rid = str(run_id or "").strip()
        with self._db() as con:
            if rid == "latest":
                row = con.execute("SELECT run_id FROM runs ORDER BY created DESC, run_id DESC LIMIT 1").fetchone()
                if row:
                    return row[0]
                raise UnknownRunError(f"the knowledge base at {self.home} holds no runs yet")
            if con.execute("SELECT 1 FROM runs WHERE run_id = ?", (rid,)).fetchone():
                return rid
            esc = rid.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            hits = [r[0] for r in con.execute("SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' LIMIT 5",
                                              (esc + "%",))] if rid else []
            if not hits and len(rid) >= 6:  # the app shows the id's last 6 characters: a unique suffix works too
                hits = [r[0] for r in con.execute("SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' LIMIT 5",
                                                  ("%" + esc,))]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise UnknownRunError(f"run id {rid!r} is ambiguous ({', '.join(hits)}, ...); give more characters")
        raise UnknownRunError(f"no run {rid!r} in the knowledge base at {self.home}; {HOW_TO_LIST}")

    def _row(self, run_id: str) -> Dict[str, Any]:
        rid = self.resolve(run_id)
        with self._db() as con:
            row = con.execute("SELECT * FROM runs WHERE run_id = ?", (rid,)).fetchone()
        if row is None:  # deleted between resolve and read
            raise UnknownRunError(f"no run {rid!r} in the knowledge base at {self.home}; {HOW_TO_LIST}")
        return dict(row)

    # ----- writing (used by KBRecorder) ------------------------------------------------------
    def _insert(self, values: Dict[str, Any]) -> None:
        cols = ", ".join(values)
        with self._db(write=True) as con:
            con.execute(f"INSERT INTO runs ({cols}) VALUES ({', '.join('?' * len(values))})", list(values.values()))

    def _update(self, run_id: str, only_running: bool = False, **values: Any) -> bool:
        values["updated"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in values)
        cond = " AND status = 'running'" if only_running else ""
        with self._db(write=True) as con:
            cur = con.execute(f"UPDATE runs SET {sets} WHERE run_id = ?{cond}", [*values.values(), run_id])
            return cur.rowcount > 0

    def mark_failed(self, run_id: str, reason: str) -> None:
        """Mark a run ``failed`` with ``reason`` (only if it is still ``running``)."""
        self._update(self.resolve(run_id), only_running=True, status="failed", error=str(reason)[:2000])

    def mark_stopped(self, run_id: str, reason: str = "stopped by the user") -> None:
        """Mark a run ``stopped`` (only if it is still ``running``)."""
        self._update(self.resolve(run_id), only_running=True, status="stopped", error=str(reason)[:2000])

    # ----- reading --------------------------------------------------------------------------
    def list_runs(self):
        """All runs, newest first.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`LIST_COLUMNS`: ``run_id``, ``created`` (ISO 8601 str), ``status``,
            ``method``, ``source``, ``target``, ``epochs``, ``seed``, ``source_acc`` and
            ``target_acc`` (selected, label-free checkpoint; fractions in [0, 1]),
            ``target_acc_last``, ``target_acc_oracle``, ``wall_time_s`` (seconds), ``parent``,
            ``error``, ``epochs_done``, ``task``, ``flags`` (comma-separated: ``diverged``, ``chance``,
            ``collapsed``, ``underfit``, ``weak-alignment``, ``no-target-labels``; see
            :mod:`lepton.training.health`), and ``diverged`` (bool). Accuracies are NaN
            until the run ends; the rest of a run's metrics is in :meth:`metrics`.
        """
        import pandas as pd

        self.reap_stale()
        with self._db() as con:
            rows = [dict(r) for r in con.execute(f"SELECT {', '.join(LIST_COLUMNS)} FROM runs "
                                                 "ORDER BY created DESC, run_id DESC")]
        df = pd.DataFrame(rows, columns=LIST_COLUMNS)
        for c in ("source_acc", "target_acc", "target_acc_last", "target_acc_oracle", "wall_time_s"):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
        df["error"] = df["error"].fillna("")
        df["task"] = df["task"].fillna("classification")
        df["flags"] = df["flags"].fillna("")
        df["diverged"] = df["flags"].str.split(",").map(lambda f: "diverged" in f)
        df["parent"] = df["parent"].astype(object).where(df["parent"].notna(), None)
        return df

    def get_run(self, run_id: str) -> Dict[str, Any]:
        """Everything stored about a run but its weights and features.

        Returns
        -------
        dict
            ``run_id``, ``status``, ``error``, ``created``, ``parent``, ``run_dir`` (Path),
            ``config`` (RunConfig dict), ``epochs_done``, ``pid``, ``host``, ``feature_epochs``,
            ``checkpoint_files`` and ``summary`` with ``checkpoints``, ``table``, ``per_class``,
            ``confusion``, ``harmonisation``, ``environment``, ``history``, ``wall_time_s``
            (empty while the run is running or if it failed before finishing).

        Raises
        ------
        UnknownRunError
        RunFileError
            The run folder or its ``run.json`` / ``summary.json`` is missing or damaged.
        """
        row = self._row(run_id)
        rid = row["run_id"]
        d = self.run_dir(rid)
        if not d.is_dir():
            raise RunFileError(f"run {rid}: its folder {d} is missing; reopen the knowledge base to drop the "
                               f"row, or remove it with `python -m lepton kb delete {rid}`")
        meta = read_json(d / "run.json", rid)
        summary = {"checkpoints": {}, "table": [], "per_class": [], "confusion": [],
                   "harmonisation": meta.get("harmonisation", {}), "environment": meta.get("environment", {}),
                   "history": self.history(rid), "wall_time_s": row["wall_time_s"]}
        if (d / "summary.json").exists():
            summary.update(read_json(d / "summary.json", rid))
        return {"run_id": rid, "status": row["status"], "error": row["error"] or "", "created": row["created"],
                "parent": row["parent"], "run_dir": d, "config": meta.get("config", {}),
                "epochs_done": row["epochs_done"], "pid": row["pid"], "host": row["host"],
                "domains": meta.get("domains", []), "class_names": meta.get("class_names", []),
                "roles": meta.get("roles", []), "modality": meta.get("modality", ""),
                "feature_epochs": self.feature_epochs(rid),
                "checkpoint_files": sorted(p.stem for p in (d / "checkpoints").glob("*.safetensors")),
                "summary": summary}

    def history(self, run_id: str) -> List[Dict[str, Any]]:
        """Per-epoch rows as the training loop produced them (readable while the run is running).

        Returns
        -------
        list of dict
            ``epoch``, ``source_acc``, ``target_acc``, ``score``, ``scores``, ``losses``, ``time``;
            ``[]`` before the first epoch ends.
        """
        rid = self.resolve(run_id)
        p = self.run_dir(rid) / "history.json"
        return read_json(p, rid) if p.exists() else []

    def feature_epochs(self, run_id: str) -> List[int]:
        """Epochs with a feature snapshot (0 = before training), ascending."""
        d = self.run_dir(self.resolve(run_id)) / "features"
        out = []
        for p in d.glob("epoch_*.npz") if d.is_dir() else ():
            try:
                out.append(int(p.stem.split("_", 1)[1]))
            except ValueError:
                continue
        return sorted(out)

    def load_features(self, run_id: str, epoch: Optional[int] = None) -> Dict[str, Any]:
        """One feature snapshot.

        Parameters
        ----------
        run_id : str
        epoch : int, optional
            Default: the last snapshot.

        Returns
        -------
        dict
            ``features`` (N, D) float32, ``labels`` (N,) int64, ``preds`` (N,) int64, ``domain``
            (N,) int64 into ``domain_names`` (list of str) and ``domain_roles`` (``source``,
            ``target`` or ``eval`` per domain), ``class_names``
            (list of str), ``index`` (N,) int64 row in that domain's harmonised test split,
            ``epoch`` (int).

        Raises
        ------
        KBError
            The run stored no snapshot, or none at ``epoch`` (listing those it has).
        """
        rid = self.resolve(run_id)
        epochs = self.feature_epochs(rid)
        if not epochs:
            st = self._row(rid)["status"]
            raise KBError(f"run {rid} stored no feature snapshots (status {st}; it was recorded without features "
                          "or ended before the first snapshot); train a run with the knowledge base on to get maps")
        epoch = epochs[-1] if epoch is None else int(epoch)
        if epoch not in epochs:
            raise KBError(f"run {rid} has no feature snapshot at epoch {epoch}; it has epochs "
                          f"{', '.join(map(str, epochs))}")
        z = read_npz(self.run_dir(rid) / "features" / f"epoch_{epoch:04d}.npz", rid)
        out = {k: z[k] for k in ("features", "labels", "preds", "domain", "index")}
        out["features"] = out["features"].astype("float32", copy=False)
        for k in ("labels", "preds", "domain", "index"):
            out[k] = out[k].astype("int64", copy=False)
        out["domain_names"] = [str(s) for s in z["domain_names"]]
        n = len(out["domain_names"])
        out["domain_roles"] = ([str(s) for s in z["domain_roles"]] if "domain_roles" in z else
                               (["source", "target"] + ["eval"] * (n - 2))[:n])
        out["class_names"] = [str(s) for s in z["class_names"]]
        out["epoch"] = epoch
        return out

    def metrics(self, run_id: str) -> Dict[str, Any]:
        """A finished run's metrics document: ``task``, ``metric`` (its name) and ``checkpoints``
        (per checkpoint: epoch, score, source and target values); ``{}`` until the run ends."""
        import json
        row = self._row(run_id)
        return json.loads(row["metrics"]) if row.get("metrics") else {}

    def load_state(self, run_id: str, checkpoint: str = "selected") -> Dict[str, Any]:
        """A stored raw ``state_dict`` (name -> CPU tensor), e.g. for :meth:`load_method`.

        Parameters
        ----------
        checkpoint : str
            ``selected`` (label-free choice, the run's model), ``last`` or ``oracle``.

        Raises
        ------
        KBError
            Unknown checkpoint name, or the run stored none (naming its status).
        """
        if checkpoint not in CHECKPOINTS:
            raise KBError(f"unknown checkpoint {checkpoint!r}; use one of {', '.join(CHECKPOINTS)}")
        row = self._row(run_id)
        p = self.run_dir(row["run_id"]) / "checkpoints" / f"{checkpoint}.safetensors"
        if not p.exists():
            why = f": {row['error']}" if row["error"] else ""
            raise KBError(f"run {row['run_id']} has no stored {checkpoint!r} checkpoint (status {row['status']}{why})")
        return read_state(p, row["run_id"])

    # ----- housekeeping ---------------------------------------------------------------------
    def reap_stale(self) -> List[str]:
        """Mark ``running`` runs whose process is gone as ``failed``, with the reason.

        Returns
        -------
        list of str
            Ids marked failed.
        """
        with self._db() as con:
            rows = [dict(r) for r in con.execute("SELECT run_id, pid, host, start_token, heartbeat FROM runs "
                                                 "WHERE status = 'running'")]
        dead = []
        for r in rows:
            if procs.process_alive(r["pid"], r["host"], r["start_token"], r["heartbeat"]):
                continue
            when = time.strftime("%Y-%m-%d %H:%M:%S")
            reason = (f"the process that ran it (pid {r['pid']} on {r['host']}) ended without finishing "
                      f"(killed or crashed); marked failed at {when}")
            if self._update(r["run_id"], only_running=True, status="failed", error=reason):
                dead.append(r["run_id"])
        return dead
