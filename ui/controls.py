"""The run controls, each with one line of what the tutorial teaches about it."""

from __future__ import annotations

import streamlit as st

from engine import RunConfig
from engine.core.config import GPU_ACTOR_CALLS, LIMITS, pipeline_defaults
from engine.core.models import MODEL_NAMES, MODELS, weights_kind
from ui import link

PIPELINE_LABELS = {"Naive": "naive", "Actor-based": "actor"}
STAGE_LABELS = {
    "Inference only": "single",
    "CPU pre-processing + inference": "cpu_preprocess",
    "Two-model ensemble": "ensemble",
}
PRECISIONS = ["fp32", "bf16", "fp16"]
BATCH_RANGE, BLOCK_RANGE, IMAGES_RANGE = (1, 1024), (1, 256), (16, 20_000)
DATA_LABELS = {
    "Synthetic (generated in the pipeline)": "synthetic",
    "JPEG files (real decode)": "jpeg",
    "Folder or URI": "path",
}


def _apply_defaults(pipeline: str, gpu: bool, prefix: str = "") -> None:
    """Load a pipeline's starting settings into the controls (whose keys start with `prefix`)."""
    defaults = pipeline_defaults(pipeline, gpu)
    st.session_state[f"{prefix}batch"] = defaults["batch_size"]
    st.session_state[f"{prefix}concurrency"] = defaults["concurrency"]
    st.session_state[f"{prefix}block"] = defaults["block_size_mb"]
    if gpu:
        st.session_state[f"{prefix}gpus"] = defaults["num_gpus"]
        st.session_state[f"{prefix}calls"] = GPU_ACTOR_CALLS


def concurrency_range(gpus: float, cpus: float) -> tuple[int, int]:
    """The concurrency sliders' bounds: past one actor per GPU (or per core) they only queue, but may be tried."""
    return 1, max(8, int(max(gpus * 4, cpus)))


def _follow_link(gpus: float, cpus: float) -> None:
    """Settings in the page's address override the defaults; a wrong one is named in one line and ignored."""
    choices = {"model": MODEL_NAMES, "pipeline": list(PIPELINE_LABELS.values()), "precision": PRECISIONS}
    ranges = {
        "batch": BATCH_RANGE,
        "concurrency": concurrency_range(gpus, cpus),
        "block": BLOCK_RANGE,
        "images": IMAGES_RANGE,
    }
    settings, problems = link.read(st.query_params.to_dict(), choices, ranges)
    if "pipeline" in settings:
        _apply_defaults(settings["pipeline"], gpus > 0)
        settings["pipeline"] = next(label for label, name in PIPELINE_LABELS.items() if name == settings["pipeline"])
    st.session_state.update(settings)
    for problem in problems:
        st.warning(problem)


def run_controls(gpus: float, cpus: float) -> RunConfig:
    """Draw the controls and return the (unvalidated) config they describe; the page's address follows them."""
    if "batch" not in st.session_state:
        _apply_defaults("actor", gpus > 0)
        st.session_state.update(pipeline="Actor-based", images=512, precision="bf16" if gpus > 0 else "fp32")
        _follow_link(gpus, cpus)
    model = st.selectbox("Model", MODEL_NAMES, key="model")
    info = MODELS[model]
    st.caption(
        f"{info.params_millions:g} M parameters · {info.weights_mb:g} MB of weights · "
        f"{weights_kind(model)} weights (random weights give the same throughput)"
    )
    pipeline = st.radio(
        "Pipeline",
        list(PIPELINE_LABELS),
        key="pipeline",
        horizontal=True,
        on_change=lambda: _apply_defaults(PIPELINE_LABELS[st.session_state["pipeline"]], gpus > 0),
    )
    st.caption("Naive rebuilds the model for every batch; actors load it once and keep it warm.")
    stages = STAGE_LABELS[st.radio("Stages", list(STAGE_LABELS), key="stages")]
    extra = _stage_controls(stages, model, cpus)
    st.slider("Batch size", *BATCH_RANGE, key="batch")
    st.caption("Bigger batches keep a GPU busy until its memory runs out; on a CPU the gain flattens early.")
    st.slider("Concurrency", *concurrency_range(gpus, cpus), key="concurrency")
    st.caption("Workers at once. Past one actor per GPU (or per spare core) they only queue.")
    st.slider("Block size (MB)", *BLOCK_RANGE, key="block")
    st.caption("Smaller blocks mean more tasks in parallel and smoother streaming; bigger ones, less overhead.")
    st.slider("Images", *IMAGES_RANGE, step=16, key="images")
    num_gpus = 0.0
    if gpus > 0:
        num_gpus = st.number_input("GPUs per actor", 0.0, 1.0 if gpus < 2 else float(gpus), step=0.25, key="gpus")
        st.caption("Fractions share a GPU: several actors on one GPU keep it busier. 0 runs on the CPU.")
    calls = None
    if gpus > 0 and PIPELINE_LABELS[pipeline] == "actor":
        calls = st.slider("Batches at once per actor", 1, LIMITS["calls_per_actor"][1], key="calls")
        st.caption("Threads in one actor: one batch copies to the GPU while the others compute.")
    precision = st.selectbox("Precision", PRECISIONS, key="precision")
    st.caption("bf16/fp16 roughly double GPU throughput; on a CPU fp32 is usually fastest.")
    data_label = st.radio("Data", list(DATA_LABELS), key="data")
    data = DATA_LABELS[data_label]
    if data == "path":
        data = st.text_input("Folder or URI of images", key="data_path", placeholder="/data/images or s3://…").strip()
    st.caption("Synthetic skips decoding; JPEG files make the decode cost real.")
    st.query_params.from_dict(
        link.write(
            {name: st.session_state[name] for name in ("model", "batch", "concurrency", "block", "images", "precision")}
            | {"pipeline": PIPELINE_LABELS[pipeline]}
        )
    )
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
        stages=stages,
        calls_per_actor=calls,
        **extra,
    )


def _stage_controls(stages: str, model: str, cpus: float) -> dict:
    """The settings of the extra stage: the pre-processing stage's resources, or the second model."""
    if stages == "cpu_preprocess":
        cpus_per_task = st.slider("Pre-processing CPUs per task", 0.25, 4.0, 1.0, step=0.25, key="prep_cpus")
        tasks = st.slider("Pre-processing concurrency", 1, max(2, int(cpus) * 2), 2, key="prep_concurrency")
        st.caption("Decode and resize run as their own CPU tasks, so the model's workers only do inference.")
        return {"preprocess_cpus": cpus_per_task, "preprocess_concurrency": tasks}
    if stages == "ensemble":
        others = [m for m in MODEL_NAMES if m != model]
        second = st.selectbox("Second model", others, key="second_model")
        st.caption("Each model gets its own actor pool; the second averages its logits with the first's.")
        return {"second_model": second}
    return {}


IMAGE_SIZES = (64, 96, 128, 160, 224)


def plan_controls(gpus: float, cpus: float) -> RunConfig:
    """The settings that shape a pipeline's plan and blocks, in two rows, for a page that explains more than it tunes.

    Synthetic images only: planning a JPEG run would first write its files.
    """
    if "an_batch" not in st.session_state:
        _apply_defaults("actor", gpus > 0, prefix="an_")
    main, extra_stage = st.columns([4, 1], gap="medium")
    top = main.columns(3)
    model = top[0].selectbox("Model", MODEL_NAMES, key="an_model")
    pipeline = top[1].radio(
        "Pipeline",
        list(PIPELINE_LABELS),
        index=1,
        key="an_pipeline",
        horizontal=True,
        on_change=lambda: _apply_defaults(PIPELINE_LABELS[st.session_state["an_pipeline"]], gpus > 0, prefix="an_"),
    )
    stages = STAGE_LABELS[top[2].selectbox("Stages", list(STAGE_LABELS), index=1, key="an_stages")]
    with extra_stage:
        extra = _stage_controls(stages, model, cpus)
    row = main.columns(6 if gpus > 0 else 5)
    row[0].slider("Batch size", *BATCH_RANGE, key="an_batch")
    row[1].slider("Concurrency", *concurrency_range(gpus, cpus), key="an_concurrency")
    row[2].slider("Block size (MB)", *BLOCK_RANGE, key="an_block")
    row[3].slider("Images", *IMAGES_RANGE, 512, step=16, key="an_images")
    row[4].select_slider("Image size (px)", IMAGE_SIZES, 224, key="an_size")
    num_gpus = 0.0
    if gpus > 0:
        most = 1.0 if gpus < 2 else float(gpus)
        num_gpus = row[5].number_input("GPUs per actor", 0.0, most, step=0.25, key="an_gpus")
    return RunConfig(
        model=model,
        pipeline=PIPELINE_LABELS[pipeline],
        images=st.session_state["an_images"],
        image_size=st.session_state["an_size"],
        batch_size=st.session_state["an_batch"],
        concurrency=st.session_state["an_concurrency"],
        block_size_mb=st.session_state["an_block"],
        num_gpus=float(num_gpus),
        precision="bf16" if num_gpus else "fp32",
        address=st.session_state.get("ray_address") or None,
        stages=stages,
        **extra,
    )


BATCH_CHOICES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
BLOCK_CHOICES = [1, 4, 16, 32, 64, 128, 256]


def sweep_controls(gpus: float, cpus: float) -> tuple[RunConfig, list[int], list[int], list[int]]:
    """The sweep's fixed settings and its grid: (base config, batch sizes, concurrencies, block sizes)."""
    gpu = gpus > 0
    left, right = st.columns(2)
    model = left.selectbox("Model", MODEL_NAMES, key="sw_model")
    pipeline = PIPELINE_LABELS[right.radio("Pipeline", list(PIPELINE_LABELS), index=1, key="sw_pipeline")]
    images = left.slider("Images per cell", *IMAGES_RANGE, 256 if not gpu else 5_000, step=16, key="sw_images")
    data = DATA_LABELS[right.radio("Data", list(DATA_LABELS)[:2], key="sw_data", horizontal=True)]
    num_gpus = 0.0
    if gpu:
        num_gpus = left.number_input("GPUs per actor", 0.0, float(gpus), 1.0, step=0.25, key="sw_gpus")
    precision = right.selectbox("Precision", PRECISIONS, index=1 if gpu else 0, key="sw_precision")
    defaults = pipeline_defaults(pipeline, gpu)
    batches = st.multiselect("Batch sizes", BATCH_CHOICES, default=[16, 64, 256] if gpu else [8, 32], key="sw_batches")
    concurrency = st.multiselect(
        "Concurrency", list(range(1, concurrency_range(gpus, cpus)[1] + 1)), default=[1, 2], key="sw_concurrency"
    )
    blocks = st.multiselect("Block sizes (MB)", BLOCK_CHOICES, default=[defaults["block_size_mb"]], key="sw_blocks")
    base = RunConfig(
        model=model,
        pipeline=pipeline,
        images=images,
        data=data,
        num_gpus=float(num_gpus),
        precision=precision,
        address=st.session_state.get("ray_address") or None,
    )
    return base, sorted(batches), sorted(concurrency), sorted(blocks)
