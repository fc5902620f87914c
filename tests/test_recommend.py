"""Cross-domain recommendation (issue 15): interaction domains, the ranking protocol, the metrics,
the recommenders and the CLI, on MovieLens 100K and small files written here."""
import json
import math

import numpy as np
import pytest
import torch

from lepton.cli import main
from lepton.config import RunConfig
from lepton.data import DataError, load_domain
from lepton.data.interactions import pair_interactions
from lepton.evaluation.ranking import hit_rate, ndcg, rank_of_first, ranking_summary
from lepton.losses import bpr_loss
from lepton.training import train

ml = pytest.mark.usefixtures("data_dir")  # skips when the data folder is missing


def test_ranks_hr_and_ndcg_by_hand():
    scores = np.array([[0.9, 0.1, 0.2],    # first: rank 0
                       [0.5, 0.7, 0.5],    # one above, one tie (a tie counts against it): rank 2
                       [0.0, 0.0, 0.0]])   # all tied: last
    ranks = rank_of_first(scores)
    assert ranks.tolist() == [0, 2, 2]
    assert hit_rate(ranks, 2).tolist() == [1.0, 0.0, 0.0]
    assert ndcg(ranks, 3) == pytest.approx([1.0, 1 / math.log2(4), 1 / math.log2(4)])
    s = ranking_summary(np.array([0, 1, 20]), 10)
    assert s["hr@10"] == pytest.approx(2 / 3) and s["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert s["n"] == 3 and math.isnan(ranking_summary(np.zeros(0))["ndcg@10"])


def test_bpr_loss_by_hand():
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    want = -(math.log(1 / (1 + math.exp(-2.0))) + math.log(0.5)) / 2
    assert bpr_loss(pos, neg).item() == pytest.approx(want)
    with pytest.raises(ValueError, match="same shape"):
        bpr_loss(pos, neg[:1])


@ml
def test_movielens_genre_pair_follows_the_protocol():
    comedy, drama = load_domain("movielens-comedy"), load_domain("movielens-drama")
    assert comedy.modality == "interactions" and comedy.notes["n_users"] > 900
    d = pair_interactions([comedy], drama, cold_start_k=1)
    r = d.record
    assert r["shared_items"] > 0 and not set(d.items_s) & set(d.items_t)  # each shared item went to one side
    assert r["shared_users"] > 800 and len(d.test_users) == len(set(d.test_users.tolist()))
    # the test item is each user's latest positive among the target's items
    u0 = d.test_users[0]
    rows = ((drama.meta_train["user"] == d.users[u0]) & (drama.x_train[:, 0] >= 4)
            & np.isin(drama.meta_train["item"], d.items_t))
    latest = drama.x_train[rows, 1].max()
    test_id = d.items_t[d.test_items[0]]
    assert drama.x_train[rows & (drama.meta_train["item"] == test_id), 1][0] == latest
    # cold-start users keep exactly k target positives; candidates are the test item then unseen items
    counts = np.bincount(d.train_t[:, 0], minlength=d.n_users)
    assert d.cold.sum() == r["cold_start_users"] > 100
    assert (counts[d.test_users[d.cold]] == 1).all()
    assert d.candidates.shape == (len(d.test_users), 100) and (d.candidates[:, 0] == d.test_items).all()
    touched = {(u, i) for u, i in zip(drama.meta_train["user"], drama.meta_train["item"])}
    for row, u in zip(d.candidates[:20], d.test_users[:20]):
        assert not any((d.users[u], d.items_t[i]) in touched for i in row[1:])
    assert any("seeded coin" in n for n in r["notes"])


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_an_interactions_file_is_read_with_ids_duplicates_and_domains(tmp_path):
    p = _write(tmp_path / "ratings.csv", "User,Item,rating,timestamp,domain\nann,b1,5,1,books\nann,b1,4,3,books\n"
               "bob,b2,3,2,books\nann,m1,5,4,music\n")
    books = load_domain(p + "#domain=books,scale=1-5", cache=False)
    assert books.modality == "interactions" and len(books.x_train) == 2
    assert "1 duplicate" in books.notes["duplicates"]
    assert books.x_train[books.meta_train["item"] == "b1", 0][0] == 4  # the latest kept
    assert sorted(load_domain(p + "#domain=music", cache=False).meta_train["user"]) == ["ann"]


def test_a_bom_and_an_unstated_scale_are_fine(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes("user,item,rating,domain\nann,a1,5,a\nann,a2,5,a\nbob,a1,5,a\nann,b1,5,b\nann,b2,5,b\n"
                  "bob,b1,5,b\nbob,b2,5,b\n".encode("utf-8-sig"))
    a, b = load_domain(f"{p}#domain=a", cache=False), load_domain(f"{p}#domain=b", cache=False)
    assert a.modality == "interactions" and len(b.x_train) == 4
    d = pair_interactions([a], b, cold_start_share=0, n_negatives=0)  # all ratings 5, no #scale: no refusal
    assert len(d.test_users) == 2


@pytest.mark.parametrize("text,opts,match", [
    ("user,rating\nann,5\n", "", "needs a 'item' column"),
    ("user,item,rating\nann,a,7\n", "#scale=1-5", "outside the stated scale"),
    ("user,item,rating\nann,a,x\n", "", "not a number"),
    ("user,item,domain\nann,a,books\n", "#domain=films", "no rows have domain"),
    ("user,item,rating\n", "", "a header but no interactions"),
])
def test_bad_interaction_files_get_a_clear_error(tmp_path, text, opts, match):
    p = _write(tmp_path / "r.csv", text)
    with pytest.raises(DataError, match=match):
        load_domain(p + opts, cache=False)


def test_a_pair_without_shared_users_or_enough_interactions_is_refused(tmp_path):
    a = load_domain(_write(tmp_path / "a.csv", "user,item\nann,a1\nann,a2\nbob,a1\n"), cache=False)
    b = load_domain(_write(tmp_path / "b.csv", "user,item\ncid,b1\ncid,b2\n"), cache=False)
    with pytest.raises(DataError, match="no user has positives in both"):
        pair_interactions([a], b, cold_start_share=0)
    c = load_domain(_write(tmp_path / "c.csv", "user,item\nann,c1\nbob,c2\n"), cache=False)
    with pytest.raises(DataError, match="two or more positives"):
        pair_interactions([a], c, cold_start_share=0)
    d = load_domain(_write(tmp_path / "d.csv", "user,item\nann,d1\nann,d2\nbob,d1\n"), cache=False)
    with pytest.raises(DataError, match="cold_start_k=5 is more than"):
        pair_interactions([a], d, cold_start_k=5, n_negatives=0)


@ml
def test_recommendation_and_image_domains_do_not_mix():
    with pytest.raises(DataError, match="interaction domains only"):
        train(RunConfig("digits", "movielens-drama", "bpr-mf"), record=False)
    with pytest.raises(DataError, match="hold user-item interactions, which train with a recommendation method"):
        train(RunConfig("movielens-comedy", "movielens-drama", "dann"), record=False)


@ml
def test_transfer_methods_beat_the_target_only_baseline_for_cold_start_users():
    """k = 0: bpr-mf knows nothing of a cold-start user but the items' popularity (its item biases); cmf
    and emcdr carry their comedy taste over. The default budget (about 10 s a run)."""
    out = {}
    for m in ("popularity", "bpr-mf", "cmf", "emcdr"):
        r = train(RunConfig("movielens-comedy", "movielens-drama", m), record=False)
        assert r.status == "completed"
        out[m] = r.checkpoints["selected"]["groups"]
    cold = {m: g["cold-start"]["ndcg@10"] for m, g in out.items()}
    assert cold["cmf"] > 1.2 * cold["bpr-mf"] and cold["emcdr"] > 1.2 * cold["bpr-mf"], cold
    assert out["bpr-mf"]["warm"]["ndcg@10"] > out["popularity"]["warm"]["ndcg@10"]  # personalisation pays


@ml
def test_cli_trains_emcdr_and_prints_cold_start_and_all_users(capsys):
    assert main(["train", "--source", "movielens-comedy", "--target", "movielens-drama", "--method", "emcdr",
                 "--hparams", '{"cold_start_k": 1}', "--epochs", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "HR@10" in out and "NDCG@10" in out and "cold-start" in out and " all " in out
    from lepton.kb import KnowledgeBase
    kb = KnowledgeBase()
    df = kb.list_runs()
    assert df["task"][0] == "ranking" and df["method"][0] == "emcdr"
    run = kb.get_run(df["run_id"][0])
    assert run["summary"]["checkpoints"]["selected"]["groups"]["cold-start"]["n"] > 100
    f = kb.load_features(df["run_id"][0])
    assert f["features"].shape[1] == 32 and set(np.unique(f["domain"])) == {0, 1, 2, 3}  # users, then items
    items = f["domain"] >= 2
    assert (f["labels"][items] >= 2).all() and "Romance" in f["class_names"]  # items coloured by genre

    # the stored top-10s agree with the stored metrics, and never list a training positive
    rid = df["run_id"][0]
    rec = kb.read_arrays(rid, "recommendations.npz")
    groups = run["summary"]["checkpoints"]["selected"]["groups"]
    assert (rec["rank"] < 10).mean() == pytest.approx(groups["all"]["hr@10"])
    assert (rec["rank"][rec["cold"]] < 10).mean() == pytest.approx(groups["cold-start"]["hr@10"])
    from lepton.training import plan
    data = plan(RunConfig.from_dict(run["config"])).data
    assert all(not set(rec["top"][r]) & set(data.seen_t[u]) for r, u in enumerate(rec["user"]))
    assert (rec["catalogue_rank"] >= rec["rank"]).mean() > 0.95  # more items to beat than 99 sampled ones

    cold = str(rec["user_id"][np.flatnonzero(rec["cold"])[0]])
    assert main(["kb", "recommend", rid]) == 0  # default: the first cold-start user
    out = capsys.readouterr().out
    assert f"user {cold} (cold-start" in out and "source history" in out and "held-out item ranked" in out
    assert "no other run on the same split" in out and out.count("\n  ") >= 10
    assert main(["kb", "recommend", rid, "--user", "no-such-user"]) != 0
    assert "is not an evaluated target user" in capsys.readouterr().err


def test_cli_trains_on_a_users_own_interactions_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = ["user,item,rating,timestamp,domain"]
    for u in range(60):
        for dom in ("books", "music"):
            for i in rng.choice(40, 8, replace=False):
                lines.append(f"u{u},{dom[0]}{i},{rng.integers(3, 6)},{rng.integers(1000)},{dom}")
    p = _write(tmp_path / "mine.csv", "\n".join(lines) + "\n")
    assert main(["train", "--source", p + "#domain=books", "--target", p + "#domain=music", "--method", "cmf",
                 "--hparams", '{"n_negatives": 20}', "--epochs", "2", "--quiet", "--no-store"]) == 0
    assert "NDCG@10" in capsys.readouterr().out
    assert main(["train", "--source", p + "#domain=books", "--target", p + "#domain=music", "--method", "popularity",
                 "--hparams", '{"n_negatives": 20}', "--json", "--quiet", "--no-store"]) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert out["history"][0]["source_acc"] is None and out["task"] == "ranking"
    assert main(["train", "--source", p + "#domain=books", "--target", p + "#domain=music", "--method", "cmf",
                 "--hparams", '{"cold_start_k": 30}', "--quiet", "--no-store"]) != 0
    assert "cold_start_k=30 is more than" in capsys.readouterr().err


def test_an_uploaded_interactions_file_becomes_one_domain_per_value_of_its_domain_column(tmp_path):
    from lepton.data import list_domains, user_domains
    rng = np.random.default_rng(1)
    lines = ["user,item,rating,title,genres,domain"]
    for u in range(40):
        for dom in ("books", "music"):
            for i in rng.choice(30, 6, replace=False):
                lines.append(f"u{u},{dom[0]}{i},{rng.integers(3, 6)},{dom.title()} no. {i},{dom}|fun,{dom}")
    raw = ("\n".join(lines) + "\n").encode()
    home = tmp_path / "home"
    user_domains.add_user_domain("shop", "shop.csv", raw, None, home)
    assert user_domains.upload_parts("shop", home) == ["shop-books", "shop-music"]
    mods = {d["name"]: d["modality"] for d in list_domains()}
    assert mods["shop-books"] == mods["shop-music"] == "interactions"
    books = load_domain("shop-books")
    assert books.notes["n_users"] == 40 and len(books.x_train) == 240
    assert books.notes["items"]["b3"] == {"title": "Books no. 3", "genres": ["books", "fun"]}
    r = train(RunConfig("shop-books", "shop-music", "cmf", epochs=1, hparams={"n_negatives": 20}), record=False)
    assert r.status == "completed"
    with pytest.raises(user_domains.UploadError, match="already taken"):  # another upload's domain names
        user_domains.add_user_domain("shop-books", "x.csv", raw, None, home)
    user_domains.remove_user_domain("shop", home)
    assert not {"shop", "shop-books", "shop-music"} & {d["name"] for d in list_domains()}


@ml
def test_a_ranking_run_that_crashes_is_stored_as_failed(monkeypatch):
    from lepton.kb import KnowledgeBase
    from lepton.methods.recommend import CMF

    def boom(self, batch, step):
        raise RuntimeError("native crash stand-in")
    monkeypatch.setattr(CMF, "update", boom)
    with pytest.raises(RuntimeError, match="stand-in"):
        train(RunConfig("movielens-comedy", "movielens-drama", "cmf", epochs=1))
    df = KnowledgeBase().list_runs()
    assert df["status"][0] == "failed" and "stand-in" in df["error"][0]
