"""AppTest of the Train page: pickers, URL state, checks, start/stop of a background job, errors."""
import pytest
from app_helpers import no_exception, open_page, texts, wait_for
from toydata import fake_fit

from lepton.data import DataError
from lepton.training.jobs import JobManager
from ui import state as ui_state


def test_train_page_renders_with_defaults(fake_jobs):
    at = open_page("train")
    no_exception(at)
    assert at.selectbox(key="source").value == "digits"
    assert at.selectbox(key="target").value == "digits-small"  # the "mild" lesson: adaptation wins
    assert at.selectbox(key="method").value == "dann"
    assert at.number_input(key="epochs").value == 0  # the automatic budget (10 epochs, at least 1,000 steps)
    assert not at.button(key="start").disabled
    at.button(key="start").click().run()
    (job,) = fake_jobs["jm"].list()
    assert job.config.epochs is None and job.config.steps is None
    assert len(at.image) == 2  # source and target thumbnails


def test_url_query_string_sets_the_experiment(fake_jobs):
    at = open_page("train", {"source": "digits-noisy", "target": "digits-blurred", "method": "deep-coral",
                             "seed": "7", "epochs": "3"})
    no_exception(at)
    assert at.selectbox(key="source").value == "digits-noisy"
    assert at.selectbox(key="target").value == "digits-blurred"
    assert at.selectbox(key="method").value == "deep-coral"
    assert at.number_input(key="seed").value == 7 and at.number_input(key="epochs").value == 3
    at.selectbox(key="method").select("dan").run()
    assert at.selectbox(key="method").value == "dan"  # (the browser writes the URL; see test_browser)


def test_a_link_carries_hyper_parameters_and_advanced_settings(fake_jobs):
    at = open_page("train", {"method": "dann", "hp_dann_trade_off": "0.5", "augment": "none", "batch_size": "32"})
    no_exception(at)
    assert at.number_input(key="hp_dann_trade_off").value == 0.5 and at.selectbox(key="augment").value == "none"
    at.button(key="start").click().run()
    (job,) = fake_jobs["jm"].list()
    assert job.config.hparams["trade_off"] == 0.5 and job.config.augment == "none" and job.config.batch_size == 32


def test_hyper_parameter_widgets_follow_the_method(fake_jobs):
    at = open_page("train")
    keys = {w.key for w in at.number_input} | {w.key for w in at.toggle}
    assert {"hp_dann_trade_off", "hp_dann_gamma", "hp_dann_lr", "hp_dann_lr_anneal"} <= keys
    help_texts = [w.help for w in at.number_input if w.key == "hp_dann_gamma"]
    assert help_texts and "lambda" in help_texts[0]
    at.selectbox(key="method").select("self-training").run()
    no_exception(at)
    assert at.selectbox(key="hp_self-training_align").value == "coral"  # the default since defaults_version 4


def test_lesson_mode_hides_advanced_controls(fake_jobs):
    at = open_page("train", {"lesson": "1"})
    no_exception(at)
    assert len(at.expander) == 0
    assert not [w for w in at.number_input if w.key.startswith("hp_")]
    assert at.selectbox(key="source").value == "digits"  # the basic choices stay


def test_a_lesson_link_guides_the_class_and_leads_back_to_the_full_app(fake_jobs):
    from lepton.lessons import find_lesson
    hard = find_lesson("hard")
    at = open_page("train", hard.query())
    no_exception(at)
    assert at.selectbox(key="target").value == hard.target and at.selectbox(key="method").value == hard.method
    guide = [i.value for i in at.info if i.value.startswith("**Lesson: ")]
    assert guide and hard.title in guide[0] and "Press **Start training**" in guide[0] and hard.question in guide[0]
    assert len(at.expander) == 0  # advanced settings hidden
    at.button(key="leave_lesson_page").click().run()
    no_exception(at)
    assert at.query_params["lesson"] == ["0"] or at.query_params["lesson"] == "0"
    assert not [i for i in at.info if i.value.startswith("**Lesson: ")]
    assert any("Advanced settings" in e.label for e in at.expander)  # the full app is back


def test_same_domain_is_explained(fake_jobs):
    at = open_page("train")
    at.selectbox(key="target").select("digits").run()
    no_exception(at)
    assert "same domain" in texts(at)


def test_too_few_target_labels_blocks_start(fake_jobs):
    at = open_page("train", {"method": "finetune"})
    at.number_input(key="hp_finetune_k").set_value(1000).run()
    no_exception(at)
    assert "labelled target examples per class" in texts(at)
    assert at.button(key="start").disabled


def test_start_shows_progress_then_results(fake_jobs):
    at = open_page("train", {"epochs": "2"})
    at.button(key="start").click().run()
    no_exception(at)
    jm = fake_jobs["jm"]
    (job,) = jm.list()
    assert job.config.method == "dann" and job.config.epochs == 2
    assert wait_for(lambda: not job.active, 30)
    at.run()
    no_exception(at)
    assert "completed after 2 of 2 epochs" in texts(at) or any(
        "completed after 2 of 2" in (p.proto.text or "") for p in at.get("progress"))
    assert len(at.get("plotly_chart")) >= 3  # live accuracy, live losses, result bars
    # the headline is the run's result: the label-free checkpoint, with last and oracle-best beside it
    sel = job.result.checkpoints["selected"]
    (head,) = [m for m in at.metric if m.label.startswith("target, label-free")]
    assert head.label == f"target, label-free (epoch {sel['epoch']})"
    assert head.value == f"{100 * sel['target_acc']:.1f}%"
    assert "oracle-best" in texts(at) and "last epoch" in texts(at)


def others_label(at) -> str:
    (e,) = [e for e in at.expander if "on this server" in e.label]
    return e.label


def test_a_new_session_watches_another_sessions_run_but_cannot_stop_it(fake_jobs):
    from lepton.config import RunConfig
    jm = JobManager(kb=False, fit_fn=fake_fit(step_s=0.05))
    fake_jobs["jm"] = jm
    jid = jm.start(RunConfig("digits", "digits-inverted", "dann", epochs=100), owner="someone-else")
    at = open_page("train")  # a second browser, or a reload: a new session
    no_exception(at)
    assert "1 other run(s) on this server" in others_label(at) and "watch only" in others_label(at)
    assert not [b for b in at.button if b.key == "stop_job"]  # not adopted as this session's run
    at.button(key=f"watch_{jid}").click().run()
    no_exception(at)
    assert "dann: digits → digits-inverted" in texts(at)  # the watched panel
    assert not [b for b in at.button if b.key in ("stop_job", "stop_watched")]
    assert "only that session (or the teacher) can stop it" in texts(at)
    with pytest.raises(PermissionError, match="another browser session"):
        jm.stop(jid, by=at.session_state[ui_state.OWNER_KEY])
    assert jm.get(jid).active
    jm.stop(jid)  # the process itself (the CLI, this test) may
    assert jm.wait(jid, 30)["status"] == "stopped"


def test_a_teacher_can_watch_and_stop_every_run(fake_jobs, monkeypatch):
    from lepton.config import RunConfig
    monkeypatch.setenv("LEPTON_TEACHER_KEY", "s3cret")
    jm = JobManager(kb=False, fit_fn=fake_fit(step_s=0.05))
    fake_jobs["jm"] = jm
    jid = jm.start(RunConfig("digits", "digits-inverted", "dann", epochs=100), owner="a-student")
    wrong = open_page("train", {"teacher": "guess"})
    assert "watch only" in others_label(wrong)
    at = open_page("train", {"teacher": "s3cret"})
    no_exception(at)
    assert "teacher: you can stop them" in others_label(at)
    at.button(key=f"watch_{jid}").click().run()
    at.button(key="stop_watched").click().run()
    no_exception(at)
    assert jm.wait(jid, 30)["status"] == "stopped"


def test_a_session_stops_its_own_run(fake_jobs):
    fake_jobs["jm"] = jm = JobManager(kb=False, fit_fn=fake_fit(step_s=0.05))
    at = open_page("train", {"epochs": "100"})
    at.button(key="start").click().run()
    (job,) = jm.list()
    assert job.owner == at.session_state[ui_state.OWNER_KEY]
    at.button(key="stop_job").click().run()
    no_exception(at)
    assert jm.wait(job.id, 30)["status"] == "stopped"


def test_worker_errors_show_as_messages_not_tracebacks(fake_jobs):
    fake_jobs["jm"] = JobManager(kb=False, fit_fn=fake_fit(raise_exc=DataError("missing usps.bz2: put it in /x")))
    at = open_page("train")
    at.button(key="start").click().run()
    (job,) = fake_jobs["jm"].list()
    assert wait_for(lambda: not job.active, 30)
    at.run()
    no_exception(at)
    assert any("Missing usps.bz2" in e.value for e in at.error)


def test_transfer_from_a_stored_encoder_is_offered(kb_home, fake_jobs):
    at = open_page("train")
    no_exception(at)
    pick = at.selectbox(key="init_from")
    assert pick.options[0].startswith("no:") and len(pick.options) == 3
    from lepton.kb import KnowledgeBase
    run_id = KnowledgeBase(kb_home).list_runs()["run_id"][0]
    pick.set_value(run_id).run()  # AppTest takes the value itself (the label is formatted from it)
    at.button(key="start").click().run()
    (job,) = fake_jobs["jm"].list()
    assert job.config.init_from == run_id


def test_every_registered_method_gets_its_form(fake_jobs):
    """Loops over the registry: a new method is tested the moment it is registered."""
    from lepton.methods import METHODS, method_names
    at = open_page("train")
    for name in method_names():  # the classification methods; recommenders train on interaction domains
        at.selectbox(key="method").select(name).run()
        no_exception(at)
        shown = {w.key for kind in (at.number_input, at.toggle, at.selectbox) for w in kind}
        expected = {f"hp_{name}_{h}" for h in METHODS.get(name).all_hparams()}
        assert expected <= shown, (name, expected - shown)


def test_several_source_domains_from_the_page(fake_jobs):
    at = open_page("train")
    at.multiselect(key="extra_sources").set_value(["digits-noisy", "digits-inverted"]).run()
    no_exception(at)
    at.button(key="start").click().run()
    (job,) = fake_jobs["jm"].list()
    assert job.config.sources == ("digits", "digits-noisy", "digits-inverted")


def test_a_target_among_the_sources_is_explained_before_start(fake_jobs):
    at = open_page("train")
    at.multiselect(key="extra_sources").set_value(["digits-small"]).run()  # the default target
    no_exception(at)
    assert "also a source" in texts(at)
    assert at.button(key="start").disabled


def test_a_ready_lesson_fills_the_page(fake_jobs):
    from lepton.lessons import LESSONS
    at = open_page("train")
    hard = next(x for x in LESSONS if x.key == "hard")
    at.button(key="lesson_hard").click().run()
    no_exception(at)
    assert at.selectbox(key="target").value == hard.target and at.selectbox(key="method").value == hard.method
    assert at.number_input(key="epochs").value == hard.epochs
    at.button(key="start").click().run()
    (job,) = fake_jobs["jm"].list()
    assert job.config.target == hard.target


def test_budget_scaling_and_protocol_reach_the_run_and_a_short_budget_is_warned(fake_jobs):
    at = open_page("train")
    at.number_input(key="steps").set_value(30).run()
    no_exception(at)
    assert "A small training budget: 30 optimisation steps" in texts(at)
    at.selectbox(key="protocol").select("transductive").run()
    at.selectbox(key="scaling").select("none").run()
    no_exception(at)
    at.button(key="start").click().run()
    no_exception(at)
    from ui import state
    cfg = fake_jobs["jm"].get(at.session_state[state.JOB_KEY]).config
    assert cfg.steps == 30 and cfg.protocol == "transductive" and cfg.scaling == "none"


def test_a_recommendation_pair_offers_the_recommenders_and_their_settings(fake_jobs, data_dir):
    """movielens-comedy -> movielens-drama: the method list holds the recommenders (emcdr by default),
    the settings the ranking protocol's (cold_start_k ...), not classification's; back on digits, dann."""
    at = open_page("train", {"source": "movielens-comedy", "target": "movielens-drama"})
    no_exception(at)
    method = at.selectbox(key="method")
    assert method.value == "emcdr" and set(method.options) == {"popularity", "bpr-mf", "cmf", "emcdr"}
    keys = {w.key for w in at.number_input}
    assert {"hp_emcdr_cold_start_k", "hp_emcdr_n_negatives", "hp_emcdr_positive_rating"} <= keys
    assert not [s for s in at.selectbox if s.key in ("select", "scaling", "protocol", "init_from")]
    assert "recommendation" in texts(at) and "interactions of 943 users" in texts(at)
    at.selectbox(key="source").set_value("digits").run()
    at.selectbox(key="target").set_value("digits-rotated").run()
    no_exception(at)
    assert at.selectbox(key="method").value == "dann" and at.selectbox(key="select")
