"""Advisor: the tutorial's decision framework, from a GPU node and a model to a layout, then a real run to check it."""

import streamlit as st

from engine import ConfigError
from engine.core.models import MODEL_NAMES
from engine.core.policy import PolicyError
from engine.insight import advisor
from engine.insight.advisor import AdviceError
from ui import notices, panels
from ui.access import through_app
from ui.advisor import comparison_table, constraint_table
from ui.session import cluster_now, shared_runner, submit, verifications
from ui.text import plain

through_app(__file__)

st.title("Advisor")
notices.page_top()
st.caption(
    "How many actors, how big a batch, how big a block: the tutorial's framework for one GPU node. "
    "70 % of the node's memory is heap for the actors, 30 % is Ray's object store."
)

cluster = cluster_now()
runner = shared_runner()


def model_changed() -> None:
    st.session_state["adv_model_size_gb"] = advisor.model_size_gb(st.session_state["adv_model"])


model = st.selectbox("Model", MODEL_NAMES, key="adv_model", on_change=model_changed)
machine = advisor.detect_machine(model)
if "adv_gpus" not in st.session_state:
    st.session_state.update({f"adv_{name}": value for name, value in advisor.prefill(machine).items()})
if not machine["gpus"]:
    st.info("No NVIDIA GPU here: enter the GPU machine you plan for.")
else:
    gpu = f"{machine['gpu_name']}, {machine['gpu_mem_gb']:g} GB each" if machine["gpu_mem_gb"] else "not readable here"
    st.caption(
        f"Prefilled from this cluster's largest GPU node: {machine['gpus']} GPU(s) ({gpu}), "
        f"{machine['node_mem_gb']:g} GB of memory."
    )

gpu_col, node_col, model_col = st.columns(3)
gpus = gpu_col.number_input("GPUs", step=1, key="adv_gpus", help="GPUs on the node: one actor per GPU at most.")
gpu_mem_gb = gpu_col.number_input("GPU memory (GB)", step=1.0, key="adv_gpu_mem_gb")
sample_mb = gpu_col.number_input(
    "GPU memory per sample (MB)", step=0.5, key="adv_sample_mb", help="One image's input plus its activations."
)
node_mem_gb = node_col.number_input("Node memory (GB)", step=1.0, key="adv_node_mem_gb")
batch_mem_gb = node_col.number_input(
    "Batch memory (GB)", step=0.5, key="adv_batch_mem_gb", help="Host memory an actor needs for a batch."
)
model_size_gb = model_col.number_input(
    "Model size (GB)", step=0.1, format="%.3f", key="adv_model_size_gb", help="Prefilled from the model's weights."
)
image_size = model_col.number_input("Image size (px)", step=16, key="adv_image_size")

try:
    advice = advisor.advise(gpus, gpu_mem_gb, node_mem_gb, model_size_gb, sample_mb, batch_mem_gb, image_size)
except AdviceError as exc:
    st.error(plain(exc))
    st.stop()

st.subheader("Recommendation")
cols = st.columns(3)
cols[0].metric("Concurrency", advice.concurrency, help=f"actors; {advice.binding} binds")
cols[1].metric("Batch size", advice.batch_size, help=advice.sizing["batch_size"])
cols[2].metric("Block size (MB)", advice.block_size_mb, help=advice.sizing["block_size_mb"])
st.dataframe(constraint_table(advice), hide_index=True)
st.info(advisor.explain(advice))
st.caption(
    "The framework sizes for memory, not speed: the batch it advises is the largest that fits, which is "
    "rarely the fastest. Take the advice as the upper bound, then sweep below it."
)

st.subheader("Verify with a real run")
images = st.number_input("Images", 1, 1_000_000, 256, step=16, key="adv_images")
config, clipped = advisor.verify_config(advice, model, images, cluster["gpus"], cluster["cpus"])
st.caption(
    f"The actor pipeline on synthetic {config.image_size} px images: batch {config.batch_size}, "
    f"block {config.block_size_mb} MB, concurrency {config.concurrency}, {config.num_gpus:g} GPU per actor."
)
if clipped:
    st.warning("Clipped to this cluster: " + "; ".join(clipped) + ".")
if st.button("Verify", type="primary"):
    try:
        run = submit(config, "advisor")
        verifications()[run.id] = advisor.predicted(advice, config.concurrency, config.images)
        st.session_state["adv_run"] = run.id
    except (ConfigError, PolicyError) as exc:
        st.error(plain(str(exc).splitlines()[0]))


@st.fragment(run_every=1.0)
def verify_panel() -> None:
    """The Verify run live, then its predicted vs measured figures."""
    run = runner.get(st.session_state.get("adv_run", ""))
    if run is None:
        st.caption("Press **Verify** to run this layout for real and compare the prediction with what Ray measures.")
        return
    panels.status_line(run)
    if not run.done:
        panels.kpis(run)
    elif run.status == "finished":
        st.dataframe(comparison_table(verifications()[run.id], run.summary, run.config.num_gpus), hide_index=True)


verify_panel()
