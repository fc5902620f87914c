"""Pipeline: several source domains -> ssl -> multitask -> transfer -> evaluate on a new target, stage by stage."""
import streamlit as st

from lepton.config import EPOCHS
from lepton.strategies.stages import describe_stages, valid_stages
from lepton.training import jobs as core_jobs
from ui import live, state, widgets

state.require_app_frame()
widgets.intro("Pipeline: pretrain on many domains, transfer to a new one",
              "Chain stages: <b>self-supervised pretraining</b> (ssl) and <b>multi-task learning</b> on several "
              "labelled source domains, then a <b>transfer</b> method to the target, then a few-shot "
              "<b>evaluation</b>. Each stage starts from the previous stage's encoder and is stored as a run.")

names = state.domain_names()
left, right = st.columns([2, 1], gap="large")
domains = left.multiselect("Source domains (labelled)", names, default=[n for n in ("digits", "digits-noisy")
                           if n in names], key="pl_domains", format_func=state.domain_label,
                           help="The first is each stage's source; ssl and multitask need at least two.")
target = right.selectbox("Target domain (new)", names, key="pl_target", format_func=state.domain_label,
                         index=names.index(state.DEFAULT_TARGET) if state.DEFAULT_TARGET in names else 0,
                         help="Only evaluate (and k-shot stages such as finetune) see k of its labels per class.")
options = [n for kind in valid_stages().values() for n in kind]
stages = st.multiselect("Stages, in the order they run", options, default=["ssl", "multitask", "dann", "evaluate"],
                        key="pl_stages", help="Pick them in this order, each kind at most once: "
                        + describe_stages())
st.caption("Order: **ssl** → **multitask** → **maml | reptile** → one **transfer method** (dann, finetune, ...) "
           "→ **evaluate**. Leave out any you do not want.")
c = st.columns(4)
epochs = c[0].number_input("Epochs per stage", EPOCHS[0], EPOCHS[1], 2, key="pl_epochs")
k = c[1].number_input("k (target labels per class)", 1, 100, 5, key="pl_k",
                      help="Used by k-shot stages, the per-stage linear probe and evaluate.")
draws = c[2].number_input("Evaluation draws", 1, 20, 3, key="pl_draws",
                          help="Draws of the k labelled examples; results are mean ± std over the draws.")
seed = c[3].number_input("Seed", 0, 10_000, 0, key="pl_seed")

blocked = widgets.show_problems(core_jobs.check_pipeline(domains, target, stages, int(k)))
jm = state.jobs()
job_id = state.current_job_id("pipeline")
running = job_id is not None and jm.get(job_id).active
if st.button("Start pipeline", type="primary", icon=":material/play_arrow:", key="pl_start",
             disabled=blocked or running, help="Runs in the background; you can switch pages meanwhile."):
    try:
        job_id = jm.start_pipeline(domains, target, stages, int(epochs), int(seed), int(k), draws=int(draws),
                                   owner=state.owner())
    except (ValueError, KeyError) as e:
        st.error(core_jobs.explain_error(e))
    else:
        st.session_state[state.PIPELINE_KEY] = job_id
        st.rerun()

live.other_runs("pipeline")
if job_id is not None:
    st.divider()
    live.pipeline_panel(job_id)
