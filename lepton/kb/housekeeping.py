"""Storage budget of the knowledge base: what a run occupies, and ``gc`` to free what old runs do
not need while keeping their records (index row, config, history, summary, the selected model).

A mix-in of :class:`lepton.kb.store.KnowledgeBase`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List

FINISHED = ("completed", "stopped", "failed")


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path``, each inode once (hard-linked checkpoints count once); 0 if missing."""
    seen, total = set(), 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                st = os.stat(os.path.join(root, f))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


class Housekeeping:
    """Mix-in: :meth:`run_size` and :meth:`gc` (needs ``run_dir``, ``_row``, ``list_runs``, ``feature_epochs``)."""

    def run_size(self, run_id: str) -> int:
        """Bytes a run's folder occupies on disk (hard links counted once, the map cache included).

        Raises
        ------
        UnknownRunError
        """
        return folder_bytes(self.run_dir(self._row(run_id)["run_id"]))

    def gc(self, keep: int = 20, dry_run: bool = False) -> List[Dict[str, Any]]:
        """Free the space of old finished runs, keeping their records.

        For every finished run except the ``keep`` newest: the ``last`` and ``oracle`` checkpoints
        (the ``selected`` one, the run's model, stays, so transfer from it still works), the feature
        snapshots other than the first and the last epoch (maps and shift numbers before and after
        stay) and the cached map coordinates are removed. Running runs are never touched; the index
        row, ``run.json``, ``history.json`` and ``summary.json`` always stay.

        Parameters
        ----------
        keep : int
            Newest finished runs left whole (>= 0).
        dry_run : bool
            Only report what would be removed.

        Returns
        -------
        list of dict
            One per run with something to remove: ``run_id``, ``files`` (names relative to the run
            folder), ``freed_bytes``.

        Raises
        ------
        ValueError
            ``keep`` < 0.
        """
        if int(keep) < 0:
            raise ValueError(f"keep must be >= 0, got {keep}")
        runs = self.list_runs()
        old = list(runs[runs["status"].isin(FINISHED)]["run_id"])[int(keep):]  # list_runs is newest first
        out = []
        for rid in old:
            d = self.run_dir(rid)
            files = [d / "checkpoints" / f"{n}.safetensors" for n in ("last", "oracle")]
            epochs = self.feature_epochs(rid)
            files += [d / "features" / f"epoch_{e:04d}.npz" for e in epochs[1:-1]]
            files += sorted((d / "maps").glob("*")) if (d / "maps").is_dir() else []
            files = [f for f in files if f.is_file()]
            if not files:
                continue
            freed = _unique_bytes(files, d)
            if not dry_run:
                for f in files:
                    try:
                        f.unlink()
                    except FileNotFoundError:
                        pass
            out.append({"run_id": rid, "files": [str(f.relative_to(d)) for f in files], "freed_bytes": int(freed)})
        return out


def _unique_bytes(files: List[Path], d: Path) -> int:
    """Bytes removing ``files`` would free: a file whose inode another kept file shares frees nothing."""
    keep_inodes = set()
    drop = {f.resolve() for f in files}
    for root, _, names in os.walk(d):
        for n in names:
            p = Path(root, n).resolve()
            if p not in drop:
                st = p.stat()
                keep_inodes.add((st.st_dev, st.st_ino))
    total, seen = 0, set()
    for f in files:
        st = f.stat()
        key = (st.st_dev, st.st_ino)
        if key not in keep_inodes and key not in seen:
            seen.add(key)
            total += st.st_size
    return total


__all__ = ["Housekeeping", "folder_bytes"]
