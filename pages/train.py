"""Train: pick source and target, a method and its settings, start a run and watch it live."""
import streamlit as st

from lepton.data.catalog import domain_modality
from lepton.config import (AUGMENTS, AUTO_EPOCHS, AUTO_MIN_STEPS, EPOCHS, PROTOCOLS, SCALINGS, SELECTION_SCORES, STEPS,
                           RunConfig)
from lepton.methods import METHODS, method_names
from lepton.training import jobs as core_jobs
from ui import explore, images, live, state, widgets

state.require_app_frame()
lesson = state.lesson()
widgets.intro("Train a model across a domain shift",
              "A model learns from the labelled <b>source</b> domain and is tested on the <b>target</b> domain, "
              "whose labels it never sees. Adaptation methods use the unlabelled target images to close the gap. "
              "Pick two domains, a method, and press <b>Start</b>.")

if not lesson:
    widgets.lessons()
else:
    widgets.lesson_guide()

left, right = st.columns(2, gap="large")
with left:
    source = widgets.domain_select("Source domain (labelled)", "source", state.DEFAULT_SOURCE,
                                   help="The model is trained on these images and their labels.")
    extra = [] if lesson else st.multiselect(
        "More source domains (optional)", [n for n in state.domain_names() if n != source], key="extra_sources",
        format_func=state.domain_label, help="Train on several labelled domains together (multi-source); each "
        "is stored with the role source.")
    images.show_grid(source, per_class=2, tile=32)
with right:
    target = widgets.domain_select("Target domain (unlabelled)", "target", state.DEFAULT_TARGET,
                                   help="The model is tested here; only the images (not the labels) are used.")
    images.show_grid(target, per_class=2, tile=32)

ranking = domain_modality(source) == "interactions"  # a recommendation pair: recommenders rank target items
if ranking:
    st.info("A **recommendation** pair: users shared by both domains carry what they liked in the source to the "
            "target. Each user's latest target interaction is held out and ranked (HR@10, NDCG@10); a share of the "
            "users are made **cold-start** (only `cold_start_k` target interactions kept, in the advanced settings). "
            "bpr-mf is the no-transfer baseline.", icon=":material/movie:")
names = method_names("ranking" if ranking else "classification")
default = "emcdr" if ranking else state.DEFAULT_METHOD
if st.session_state.get("method", default) not in names:  # switched between classification and recommendation
    del st.session_state["method"]  # the widget starts again from the default of this kind of pair
c1, c2, c3 = st.columns([2, 1, 1])
method = c1.selectbox("Method", names, index=names.index(default), key="method", bind="query-params",
                      help="bpr-mf is the no-transfer baseline; cmf and emcdr carry the source to the target's users."
                      if ranking else "source-only is the baseline; dann, deep-coral and dan align the domains' features.")
epochs = c2.number_input("Epochs (0: auto)", 0, EPOCHS[1], 0, key="epochs", bind="query-params",
                         help=f"Passes over the largest training domain (source or target), the same for every "
                         f"method, so a small source does not starve the run. 0: {AUTO_EPOCHS} epochs, or more "
                         f"when those give fewer than {AUTO_MIN_STEPS:,} optimisation steps (a small domain; a step "
                         "on several sources counts once per source).")
seed = c3.number_input("Seed", 0, 10_000, 0, key="seed", bind="query-params",
                       help="Same seed, same result: share the link to reproduce this experiment.")
cls = METHODS.get(method)
st.caption(f"**{method}** — {cls.summary}")

hparams, batch_size, device, select, init_from = {}, 64, "auto", "im", None
steps, scaling, protocol, augment = 0, "auto", "inductive", "auto"
if not lesson:
    with st.expander("Advanced settings: hyper-parameters, budget, scaling, augmentation, protocol, batch size, device, starting weights"):
        hparams = widgets.hparam_inputs(method, cls, bind=True)
        a, b, c = st.columns(3)
        batch_size = a.number_input("Batch size", 2, 4096, 64, key="batch_size", bind="query-params", help="Examples per domain per step.")
        device = b.selectbox("Device", core_jobs.available_devices(), key="device",
                             help="auto uses a GPU when there is one.")
        if not ranking:  # a recommendation run has no checkpoint score, scaling, protocol or encoder to choose
            select = c.selectbox("Label-free checkpoint score", list(SELECTION_SCORES), key="select", bind="query-params",
                                 help="How the run picks its epoch without target labels. dev: deep embedded "
                                 "validation (You et al. 2019), the source validation loss weighted by how "
                                 "target-like each example's features are.")
        a, b, c = st.columns(3)
        steps = a.number_input("Steps (0: use the epochs)", 0, STEPS[1], 0, key="steps", bind="query-params",
                               help="The training budget in optimisation steps, whatever the data's size. A run of a "
                               "few dozen steps is too short for adaptation methods: you will get a warning.")
        if not ranking:
            scaling = b.selectbox("Input scaling (feature tables)", list(SCALINGS), key="scaling", bind="query-params",
                                  help="auto standardises tables with the source and target training rows' mean and "
                                  "spread (no labels); images keep pixels in [0, 1]. domain-standard: each domain by "
                                  "its own rows.")
            protocol = c.selectbox("Evaluation protocol", list(PROTOCOLS), key="protocol", bind="query-params",
                                   help="inductive: the target's test split. transductive: every target row (the "
                                   "field's published protocol). Training never sees target labels either way.")
            augment = a.selectbox("Augmentation (labelled images)", list(AUGMENTS), key="augment", bind="query-params",
                                  help="affine: each labelled image is rotated (up to 10°), scaled (0.9-1.1) and "
                                  "shifted (up to 10 % of its side) at random, every step. auto: affine for images of "
                                  "16 pixels a side or more (MNIST, USPS, ...), none for the 8x8 built-in digits and other domains. Unlabelled target images are never warped.")
            stored = explore.finished_runs()
            init_from = st.selectbox("Start from the encoder of a stored run (transfer)",
                                     [None] + list(stored.get("run_id", [])), key="init_from",
                                     format_func=lambda r: "no: fresh random weights" if r is None
                                     else explore.run_label(stored)(r), help="Reuse features learnt in an earlier run.")

config = RunConfig(source=(source, *extra), target=target, method=method, hparams=hparams, epochs=int(epochs) or None,
                   batch_size=int(batch_size), seed=int(seed), device=device, select=select, init_from=init_from,
                   steps=int(steps) or None, scaling=scaling, protocol=protocol, augment=augment)
blocked = widgets.show_problems(state.check(config.to_json()))

jm = state.jobs()
job_id = state.current_job_id()
own_active = job_id is not None and jm.get(job_id).active  # current_job_id is this session's own
# Started in the script, not in an on_click callback: a callback gets the config of the previous run,
# which is stale when the widgets changed and no run has finished since (seen under load).
# The button stays enabled until the live panel's first full rerun (a fraction of a second); a click
# meanwhile starts nothing (own_active).
if st.button("Start training", type="primary", icon=":material/play_arrow:", key="start",
             disabled=blocked or own_active, help="Runs in the background; you can switch pages meanwhile.") \
        and not own_active:
    try:
        job_id = jm.start(config, owner=state.owner())
    except ValueError as e:
        st.error(core_jobs.explain_error(e))
    else:
        st.session_state[state.JOB_KEY] = job_id
        jm.wait_first_step(job_id, 1.0)  # so the panel below already draws the first progress
        st.session_state[live.JUST_STARTED] = True

live.other_runs("run")
if job_id is not None:
    st.divider()
    live.job_panel(job_id)
    if not jm.get(job_id).active:
        live.results(job_id)
st.caption("Share this experiment: copy the page address. It holds source, target, method, epochs, seed and every "
           "setting you changed from its default (hyper-parameters included); add `&lesson=1` (or a lesson's key, e.g. "
           "`&lesson=mild`) for a class, which hides the advanced settings.")
