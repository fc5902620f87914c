"""Interaction domains for cross-domain recommendation: who interacted with which item, and how.

An interaction domain is a :class:`lepton.data.Domain` with ``modality="interactions"``: one row
per (user, item) interaction, ``x`` float64 ``(N, 2)`` holding ``[rating, timestamp]`` (rating NaN
when the file has none: every row is then a positive; timestamp in seconds, or the row's order in
the file when there is none), ``meta["user"]`` and ``meta["item"]`` the raw ids as str, ``y`` all 0
(there are no classes), every row in the train split. ``notes["items"]`` maps an item id to its
``title`` and ``genres`` where the data has them; ``notes["scale"]`` is ``[low, high]`` of the ratings.

Domains
-------
* ``movielens`` and one domain per genre, ``movielens-comedy``, ``movielens-drama``,
  ``movielens-action``, ... (MovieLens 100K, Harper & Konstan, ACM TiiS 2015: 943 users, 1,682
  movies, 100,000 ratings 1-5 from ``ml-100k/u.data``, titles and the 19 genre flags from
  ``u.item``, Latin-1). A movie with several genres is in each of their domains; pairing gives it
  to one side (:func:`pair_interactions`). The data is for research use and not redistributable:
  Lepton reads it from the data folder and never ships it.
* A user's own file: a ``.csv`` with a ``user`` and an ``item`` column (any case; string ids
  allowed) and optional ``rating``, ``timestamp``, ``domain``, ``title`` and ``genres``
  (``|``-separated) columns; ``PATH#domain=books``
  keeps the rows of one domain, ``#scale=1-5`` states the rating scale (ratings outside it are
  refused; without it the scale is the ratings' range). Duplicate (user, item) rows are merged
  (the latest kept) and counted in ``notes``.

The ranking protocol itself (leave-one-out by time, 99 sampled negatives, cold-start users) is
:func:`pair_interactions`'s.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .catalog import DOMAINS, DomainSpec
from .domain import DataError, Domain

ML_DIR = "movielens/ml-100k"
ML_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
             "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
#: The random draws of pairing (shared items, cold-start users, evaluation negatives) use this
#: seed, so every method and training seed of a pair is compared on the same split.
PAIRING_SEED = 0


def genre_slug(genre: str) -> str:
    """``"Children's"`` -> ``"childrens"``, ``"Sci-Fi"`` -> ``"sci-fi"``: the domain-name form."""
    return genre.lower().replace("'", "").replace(" ", "-")


def _ml_files(ddir: Path) -> List[Path]:
    return [ddir / ML_DIR / "u.data", ddir / ML_DIR / "u.item"]


def _read_movielens(ddir: Path):
    data, item = _ml_files(ddir)
    for p in (data, item):
        if not p.exists():
            raise DataError(f"MovieLens 100K is not in the data folder ({p} is missing). Download ml-100k.zip from "
                            "GroupLens (https://files.grouplens.org/datasets/movielens/ml-100k.zip; research use "
                            f"only, see its README) and unzip it into {ddir / 'movielens'}, or set LEPTON_DATA_DIR")
    import pandas as pd
    r = pd.read_csv(data, sep="\t", header=None, names=["user", "item", "rating", "timestamp"])
    it = pd.read_csv(item, sep="|", header=None, encoding="latin-1")
    if it.shape[1] != 5 + len(ML_GENRES):
        raise DataError(f"{item}: expected {5 + len(ML_GENRES)} '|'-separated columns, found {it.shape[1]}")
    flags = it.iloc[:, 5:].to_numpy(dtype=bool)
    items = {str(int(i)): {"title": str(t), "genres": [g for g, f in zip(ML_GENRES, row) if f]}
             for i, t, row in zip(it[0], it[1], flags)}
    return r, items


def _movielens_domain(ddir: Path, genre: Optional[str]) -> Domain:
    r, items = _read_movielens(ddir)
    if genre is not None:
        keep = {i for i, v in items.items() if genre in v["genres"]}
        r = r[r["item"].astype(str).isin(keep)]
        items = {i: v for i, v in items.items() if i in keep}
    name = "movielens" if genre is None else f"movielens-{genre_slug(genre)}"
    return interaction_domain(name, r["user"].astype(str).to_numpy(), r["item"].astype(str).to_numpy(),
                              r["rating"].to_numpy(float), r["timestamp"].to_numpy(float), items, (1.0, 5.0),
                              "MovieLens 100K (Harper & Konstan, ACM TiiS 2015); research use only, not redistributed",
                              {"genre": genre or "all"})


def interaction_domain(name: str, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, times: np.ndarray,
                       item_info: Dict[str, Dict[str, Any]], scale, source: str, notes: Dict[str, Any]) -> Domain:
    """An interaction :class:`Domain` from aligned columns (see the module docstring).

    Parameters
    ----------
    users, items : np.ndarray
        str ``(N,)`` raw ids.
    ratings, times : np.ndarray
        float ``(N,)``; ratings NaN when there are none.
    item_info : dict
        ``item id -> {"title": str, "genres": [str]}`` (may be empty).
    scale : (float, float)
        Lowest and highest possible rating.

    Raises
    ------
    DataError
        No interactions.
    """
    if not len(users):
        raise DataError(f"interaction domain {name!r} has no interactions")
    x = np.stack([np.asarray(ratings, float), np.asarray(times, float)], 1)
    return Domain(name, "interactions", x, np.zeros(len(x), np.int64), np.zeros((0, 2)), np.zeros(0, np.int64), [],
                  source=source, notes={**notes, "items": item_info, "scale": [float(scale[0]), float(scale[1])],
                                        "n_users": int(len(set(users))), "n_items": int(len(set(items)))},
                  meta_train={"user": np.asarray(users, str), "item": np.asarray(items, str)},
                  meta_test={"user": np.zeros(0, str), "item": np.zeros(0, str)})


def is_interaction_table(path: Path) -> bool:
    """Whether a CSV/TSV's header names a ``user`` or an ``item`` column (any case): an interactions
    file (one lacking the other column is refused by :func:`load_interaction_table`, by name)."""
    if path.suffix.lower() not in (".csv", ".tsv"):
        return False
    import pandas as pd
    try:
        cols = {str(c).strip().lower() for c in pd.read_csv(path, nrows=0, sep=None, engine="python",
                                                            encoding="utf-8-sig").columns}
    except Exception:
        return False
    return "user" in cols or "item" in cols


def domain_values(path: Path) -> List[str]:
    """The distinct values of an interactions file's ``domain`` column, sorted (``[]`` without one).

    Raises
    ------
    DataError
        An unreadable file, or an empty value in the ``domain`` column.
    """
    import pandas as pd
    try:
        df = pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except Exception as e:
        raise DataError(f"{path.name}: cannot be read as a table ({e})") from None
    cols = {str(c).strip().lower(): c for c in df.columns}
    if "domain" not in cols:
        return []
    vals = df[cols["domain"]].str.strip()
    if (vals == "").any():
        raise DataError(f"{path.name}: {int((vals == '').sum())} rows have an empty domain; give every row one")
    return sorted(set(vals))


def load_interaction_table(path: Path, opts: Dict[str, str], name: str) -> Domain:
    """A user's interactions file as a domain (see the module docstring for the columns and options).

    Raises
    ------
    DataError
        A missing ``user`` or ``item`` column, a ``#domain=`` that the file lacks or names no rows of,
        non-numeric ratings or timestamps, ratings outside ``#scale``, an unreadable file.
    """
    import pandas as pd
    try:
        df = pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except Exception as e:
        raise DataError(f"{path.name}: cannot be read as a table ({e})") from None
    cols = {str(c).strip().lower(): c for c in df.columns}
    for need in ("user", "item"):
        if need not in cols:
            raise DataError(f"{path.name}: an interactions file needs a {need!r} column (found: "
                            f"{', '.join(map(str, df.columns))}); name the columns user,item[,rating,timestamp,domain]")
    notes: Dict[str, Any] = {}
    if "domain" in opts:
        if "domain" not in cols:
            raise DataError(f"{path.name}: '#domain={opts['domain']}' needs a 'domain' column, which the file lacks")
        df = df[df[cols["domain"]].str.strip() == opts["domain"]]
        if df.empty:
            raise DataError(f"{path.name}: no rows have domain {opts['domain']!r}")
        notes["domain"] = opts["domain"]
    if df.empty:
        raise DataError(f"{path.name}: the file has a header but no interactions; add one row per (user, item)")
    users = df[cols["user"]].str.strip().to_numpy(str)
    items = df[cols["item"]].str.strip().to_numpy(str)
    if (users == "").any() or (items == "").any():
        raise DataError(f"{path.name}: {int(((users == '') | (items == '')).sum())} rows have an empty user or item")

    def numeric(col: str) -> np.ndarray:
        v = pd.to_numeric(df[cols[col]], errors="coerce").to_numpy(float)
        if np.isnan(v).any():
            bad = int(np.flatnonzero(np.isnan(v))[0])
            raise DataError(f"{path.name}: the {col} column holds {df[cols[col]].iloc[bad]!r} (row {bad + 2}), "
                            "not a number")
        return v
    ratings = numeric("rating") if "rating" in cols else np.full(len(df), np.nan)
    times = numeric("timestamp") if "timestamp" in cols else np.arange(len(df), dtype=float)
    if "timestamp" not in cols:
        notes["timestamp"] = "no timestamp column: the row order stands for time"
    if "scale" in opts:
        lo, _, hi = opts["scale"].partition("-")
        try:
            scale = (float(lo), float(hi))
        except ValueError:
            raise DataError(f"{path.name}: '#scale={opts['scale']}' is not LOW-HIGH, e.g. scale=1-5") from None
        out = (ratings < scale[0]) | (ratings > scale[1])
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise DataError(f"{path.name}: {int(out.sum())} ratings lie outside the stated scale {opts['scale']} "
                            f"(e.g. {ratings[i]:g} in row {i + 2}); fix the file or the scale")
    elif "rating" in cols:
        scale = (float(ratings.min()), float(ratings.max()))
        notes["scale_inferred"] = True  # the ratings' range, not a stated scale: positive_rating is not checked against it
    else:
        scale = (1.0, 1.0)
    key = np.char.add(np.char.add(users, "\x00"), items)
    order = np.lexsort((times, key))  # by (user, item), then time: the latest of duplicates last
    last = np.r_[key[order][1:] != key[order][:-1], True]
    keep = np.sort(order[last])
    if len(keep) < len(df):
        notes["duplicates"] = f"{len(df) - len(keep)} duplicate (user, item) rows merged, the latest kept"
    info: Dict[str, Dict[str, Any]] = {}
    genre_col = cols.get("genres", cols.get("genre"))
    if "title" in cols or genre_col is not None:  # optional item names and genres (the map and the top-10 show them)
        titles = df[cols["title"]].str.strip() if "title" in cols else None
        for r in keep:
            info.setdefault(str(items[r]), {"title": titles.iloc[r] if titles is not None else str(items[r]),
                                       "genres": [g.strip() for g in df[genre_col].iloc[r].split("|") if g.strip()]
                                       if genre_col is not None else []})
    return interaction_domain(name, users[keep], items[keep], ratings[keep], times[keep], info, scale, str(path),
                              notes)


def _register() -> None:
    def spec(genre: Optional[str]) -> DomainSpec:
        nm = "movielens" if genre is None else f"movielens-{genre_slug(genre)}"
        what = "all movies" if genre is None else f"{genre} movies"
        return DomainSpec(nm, "interactions", f"MovieLens 100K ratings of {what} (943 users; research use only)",
                          lambda ddir, g=genre: _movielens_domain(ddir, g), files=_ml_files)
    for g in (None, *[g for g in ML_GENRES if g != "unknown"]):
        DOMAINS.register(spec(g).name)(spec(g))


_register()


# ----- pairing: the ranking protocol -------------------------------------------------------------

@dataclass
class RankingData:
    """A harmonised source/target pair of interaction domains under the ranking protocol.

    Users share one index over both domains; items are indexed per domain and disjoint. Only
    positives (rating at least ``positive_rating``; every row when a file has no ratings) are
    interactions.

    Attributes
    ----------
    users : list of str
        Raw user ids; index ``u`` is user ``users[u]``.
    items_s, items_t : list of str
        Raw item ids of the source and the target.
    train_s, train_t : np.ndarray
        int64 ``(N, 2)`` ``[user, item]`` training positives of each domain.
    val : np.ndarray
        int64 ``(V, 2)`` ``[user, item]``: each warm target user's latest training positive, held
        out from training for the label-free checkpoint choice.
    test_users, test_items : np.ndarray
        int64 ``(U,)``: each evaluated target user and their held-out latest positive.
    candidates : np.ndarray
        int64 ``(U, 1 + n_negatives)``: the test item then the sampled items the user never
        touched in the target (empty ``(U, 0)`` for full ranking).
    val_candidates : np.ndarray
        The same for ``val``.
    cold : np.ndarray
        bool ``(U,)``: which evaluated users are cold-start (only ``cold_start_k`` target positives
        kept for training).
    seen_t : list of np.ndarray
        Per user, the target items of their training positives (excluded from a full ranking).
    record : dict
        What pairing did, in numbers and words (stored as the run's harmonisation).
    """

    users: List[str]
    items_s: List[str]
    items_t: List[str]
    train_s: np.ndarray
    train_t: np.ndarray
    val: np.ndarray
    val_candidates: np.ndarray
    test_users: np.ndarray
    test_items: np.ndarray
    candidates: np.ndarray
    cold: np.ndarray
    seen_t: List[np.ndarray] = field(repr=False, default_factory=list)
    record: Dict[str, Any] = field(default_factory=dict)
    item_info: Dict[str, Dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def n_users(self) -> int:
        return len(self.users)


def _positives(d: Domain, threshold: float):
    r = d.x_train[:, 0]
    pos = np.isnan(r) | (r >= threshold)
    return d.meta_train["user"][pos], d.meta_train["item"][pos], d.x_train[pos, 1]


def pair_interactions(sources: Sequence[Domain], target: Domain, positive_rating: float = 4.0,
                      cold_start_k: int = 0, cold_start_share: float = 0.2, n_negatives: int = 99) -> RankingData:
    """Pair interaction domains for the ranking task (He et al., WWW 2017's leave-one-out protocol).

    1. Positives: interactions rated at least ``positive_rating`` (all, for a file without ratings).
    2. Items in both a source and the target go to one side only, by a seeded coin per item
       (:data:`PAIRING_SEED`), so the item sets are disjoint and only users overlap; several
       sources are pooled into one.
    3. Per target user with at least two positives: the latest (by time, then item id) is the test
       item; warm users' next latest is the validation item (the label-free checkpoint choice).
    4. Cold start: a seeded ``cold_start_share`` of the target users who also have source
       positives and at least ``cold_start_k + 1`` target positives keep only their
       ``cold_start_k`` earliest target positives for training, and all their source positives.
    5. Each evaluated user's test item is ranked against ``n_negatives`` items of the target that
       they never touched (any rating), sampled with :data:`PAIRING_SEED`; ``0`` ranks all target
       items the user has no training positive for (full ranking).

    Returns
    -------
    RankingData

    Raises
    ------
    DataError
        A domain that is not an interaction domain, no users shared by the sources and the target,
        no target user with two positives, a ``positive_rating`` outside the ratings' scale, no user
        with more than ``cold_start_k`` target positives when cold start is asked for, or fewer
        target items than ``n_negatives`` + 1.
    """
    doms = [*sources, target]
    bad = [d.name for d in doms if d.modality != "interactions"]
    if bad:
        kinds = ", ".join(f"{d.name} ({d.modality})" for d in doms)
        raise DataError(f"recommendation pairs interaction domains only; got {kinds}. Pair movielens-* or your "
                        "own user,item file with another interaction domain")
    for d in doms:
        lo, hi = d.notes.get("scale", [1.0, 5.0])
        if not np.isnan(d.x_train[:, 0]).all() and not d.notes.get("scale_inferred") and not (lo <= positive_rating <= hi):
            raise DataError(f"positive_rating={positive_rating:g} lies outside {d.name}'s rating scale {lo:g}-{hi:g}; "
                            "choose a threshold inside it")
    rng = np.random.default_rng(PAIRING_SEED)
    su, si, st = (np.concatenate(a) for a in zip(*[_positives(d, positive_rating) for d in sources]))
    tu, ti, tt = _positives(target, positive_rating)
    shared = np.intersect1d(np.unique(si), np.unique(ti))
    to_target = rng.random(len(shared)) < 0.5
    give_s, give_t = set(shared[~to_target]), set(shared[to_target])
    ks = ~np.isin(si, list(give_t)) if give_t else np.ones(len(si), bool)
    kt = ~np.isin(ti, list(give_s)) if give_s else np.ones(len(ti), bool)
    su, si, st, tu, ti, tt = su[ks], si[ks], st[ks], tu[kt], ti[kt], tt[kt]
    common = np.intersect1d(np.unique(su), np.unique(tu))
    if not len(common):
        raise DataError(f"no user has positives in both {', '.join(d.name for d in sources)} and {target.name}: "
                        "cross-domain recommendation transfers through shared users; pick domains with users in common")
    users = sorted(set(su) | set(tu))
    uidx = {u: i for i, u in enumerate(users)}
    items_s, items_t = sorted(set(si)), sorted(set(ti))
    sidx, tidx = {v: i for i, v in enumerate(items_s)}, {v: i for i, v in enumerate(items_t)}
    train_s = np.array([[uidx[u], sidx[i]] for u, i in zip(su, si)], np.int64).reshape(-1, 2)
    tu_i = np.array([uidx[u] for u in tu], np.int64)
    ti_i = np.array([tidx[i] for i in ti], np.int64)
    order = np.lexsort((ti_i, tt, tu_i))  # per user, by time then item id
    tu_i, ti_i = tu_i[order], ti_i[order]
    starts = np.r_[0, np.flatnonzero(np.diff(tu_i)) + 1]
    ends = np.r_[starts[1:], len(tu_i)]
    counts = ends - starts
    if not (counts >= 2).any():
        raise DataError(f"no user has two or more positives in the target {target.name}: the protocol holds out "
                        "each user's latest one for testing and needs at least one more to train on")
    in_source = set(np.unique(train_s[:, 0]).tolist())
    need = max(2, cold_start_k + 1)  # k to train on and the test item
    eligible = [u for u, c in zip(tu_i[starts], counts) if c >= need and u in in_source]
    n_cold = int(round(cold_start_share * len(eligible)))
    if cold_start_share > 0 and n_cold == 0:
        raise DataError(f"cold_start_k={cold_start_k} is more than the target positives users can give: no user shared "
                        f"with the source has {need} or more target positives (the most any has is {int(counts.max())}); "
                        "lower cold_start_k or set cold_start_share to 0")
    cold_users = set(rng.choice(np.array(eligible, np.int64), n_cold, replace=False).tolist()) if n_cold else set()
    train_t, val, tests, cold = [], [], [], []
    seen: List[List[int]] = [[] for _ in users]
    for s, e in zip(starts, ends):
        u, its = int(tu_i[s]), ti_i[s:e]
        if len(its) < 2:
            train_t += [(u, int(i)) for i in its]
            seen[u] += its.tolist()
            continue
        tests.append((u, int(its[-1])))
        rest = its[:-1]
        if u in cold_users:
            rest = rest[:cold_start_k]
            cold.append(True)
        else:
            cold.append(False)
            if len(rest) >= 2:
                val.append((u, int(rest[-1])))
                rest = rest[:-1]
        train_t += [(u, int(i)) for i in rest]
        seen[u] += rest.tolist()
    touched: Dict[int, set] = {}
    all_t = target.meta_train
    for u, i in zip(all_t["user"], all_t["item"]):  # any rating: a user never gets a negative they rated
        if i in tidx and u in uidx:
            touched.setdefault(uidx[u], set()).add(tidx[i])
    n_items = len(items_t)
    if n_negatives and n_items < n_negatives + 1:
        raise DataError(f"the target {target.name} has {n_items} items after pairing, too few to rank against "
                        f"{n_negatives} sampled negatives; lower n_negatives or use 0 (full ranking)")

    def candidates(pairs) -> np.ndarray:
        if not n_negatives:
            return np.zeros((len(pairs), 0), np.int64)
        out = np.empty((len(pairs), 1 + n_negatives), np.int64)
        for r, (u, i) in enumerate(pairs):
            avoid = touched.get(u, set())
            pool = np.setdiff1d(np.arange(n_items), np.fromiter(avoid, np.int64, len(avoid)), assume_unique=False)
            if len(pool) < n_negatives:
                pool = np.setdiff1d(np.arange(n_items), [i])  # a user who touched nearly everything
            out[r, 0], out[r, 1:] = i, rng.choice(pool, n_negatives, replace=False)
        return out
    tests_a = np.array(tests, np.int64).reshape(-1, 2)
    val_a = np.array(val, np.int64).reshape(-1, 2)
    n_shared = int(len(common))
    record = {
        "task": "ranking", "positive_rating": positive_rating, "protocol":
        f"leave-one-out by time; the test item ranked against {n_negatives} sampled unseen items" if n_negatives
        else "leave-one-out by time; full ranking over the target's items",
        "sources": [d.name for d in sources], "target": target.name,
        "users": len(users), "shared_users": n_shared, "items_source": len(items_s), "items_target": n_items,
        "train_source": int(len(train_s)), "train_target": len(train_t), "test_users": len(tests),
        "validation_users": len(val), "cold_start_users": n_cold, "cold_start_k": int(cold_start_k),
        "shared_items": int(len(shared)), "shared_items_to_target": int(to_target.sum()),
        "notes": [f"{len(shared)} items are in both domains; each was given to one side by a seeded coin "
                  f"({int(to_target.sum())} to the target, {int((~to_target).sum())} to the source), so the "
                  "item sets are disjoint and only users are shared" if len(shared) else
                  "the item sets are disjoint; only users are shared",
                  f"{n_cold} cold-start users (of {len(eligible)} eligible) keep {cold_start_k} target "
                  "interaction(s) for training, and all their source interactions"]
        + [f"{d.name}: {d.notes[k]}" for d in doms for k in ("duplicates", "timestamp") if k in d.notes],
    }
    info = {**{k: v for d in sources for k, v in d.notes.get("items", {}).items()}, **target.notes.get("items", {})}
    return RankingData(users, items_s, items_t, train_s, np.array(train_t, np.int64).reshape(-1, 2), val_a,
                       candidates(val_a), tests_a[:, 0], tests_a[:, 1], candidates(tests_a), np.array(cold, bool),
                       [np.array(s, np.int64) for s in seen], record, info)
