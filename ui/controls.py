"""The run controls, each with one line of what the tutorial teaches about it."""

from __future__ import annotations

import streamlit as st

from engine import RunConfig
from engine.config import pipeline_defaults
from engine.models import MODEL_NAMES, MODELS, weights_kind

PIPELINE_LABELS = {"Naive": "naive", "Actor-based": "actor"}
DATA_LABELS = {
    "Synthetic (generated in the pipeline)": "synthetic",
    "JPEG files (real decode)": "jpeg",
    "Folder or URI": "path",
}


def _apply_defaults(pipeline: str, gpu: bool) -> None:
    """Load a pipeline's starting settings into the controls."""
    defaults = pipeline_defaults(pipeline, gpu)
    st.session_state["batch"] = defaults["batch_size"]
    st.session_state["concurrency"] = defaults["concurrency"]
    st.session_state["block"] = defaults["block_size_mb"]
    if gpu:
        st.session_state["gpus"] = defaults["num_gpus"]


def run_controls(gpus: float, cpus: float) -> RunConfig:
    """Draw the controls and return the (unvalidated) config they describe."""
    if "batch" not in st.session_state:
        _apply_defaults("actor", gpus > 0)
        st.session_state.setdefault("precision", "bf16" if gpus > 0 else "fp32")
    model = st.selectbox("Model", MODEL_NAMES, key="model")
    info = MODELS[model]
    st.caption(
        f"{info.params_millions:g} M parameters · {info.weights_mb:g} MB of weights · "
        f"{weights_kind(model)} weights (random weights give the same throughput)"
    )
    pipeline = st.radio(
        "Pipeline",
        list(PIPELINE_LABELS),
        index=1,
        key="pipeline",
        horizontal=True,
        on_change=lambda: _apply_defaults(PIPELINE_LABELS[st.session_state["pipeline"]], gpus > 0),
    )
    st.caption("Naive rebuilds the model for every batch; actors load it once and keep it warm.")
    st.slider("Batch size", 1, 1024, key="batch")
    st.caption("Bigger batches keep a GPU busy until its memory runs out; on a CPU the gain flattens early.")
    st.slider("Concurrency", 1, max(8, int(max(gpus * 4, cpus))), key="concurrency")
    st.caption("Workers at once. Past one actor per GPU (or per spare core) they only queue.")
    st.slider("Block size (MB)", 1, 256, key="block")
    st.caption("Smaller blocks mean more tasks in parallel and smoother streaming; bigger ones, less overhead.")
    st.slider("Images", 16, 20_000, 512, step=16, key="images")
    num_gpus = 0.0
    if gpus > 0:
        num_gpus = st.number_input("GPUs per actor", 0.0, 1.0 if gpus < 2 else float(gpus), step=0.25, key="gpus")
        st.caption("Fractions share a GPU: 4 actors x 0.25 kept an H200 busiest. 0 runs on the CPU.")
    precision = st.selectbox("Precision", ["fp32", "bf16", "fp16"], key="precision")
    st.caption("bf16/fp16 roughly double GPU throughput; on a CPU fp32 is usually fastest.")
    data_label = st.radio("Data", list(DATA_LABELS), key="data")
    data = DATA_LABELS[data_label]
    if data == "path":
        data = st.text_input("Folder or URI of images", key="data_path", placeholder="/data/images or s3://…").strip()
    st.caption("Synthetic skips decoding; JPEG files make the decode cost real.")
    return RunConfig(
        model=model,
        pipeline=PIPELINE_LABELS[pipeline],
        images=st.session_state["images"],
        data=data,
        batch_size=st.session_state["batch"],
        concurrency=st.session_state["concurrency"],
        block_size_mb=st.session_state["block"],
        num_gpus=float(num_gpus),
        precision=precision,
        address=st.session_state.get("ray_address") or None,
    )
