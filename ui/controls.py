"""The run controls, each with one line of what the tutorial teaches about it."""

from __future__ import annotations

import streamlit as st

from engine import RunConfig
from engine.core.config import LIMITS
from engine.core.defaults import Machine, pick_layout
from engine.core.models import MODEL_NAMES, MODELS, weights_kind
from ui import link
from ui.text import plain

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
DECODE_LABELS = {"CPU": "cpu", "GPU": "gpu", "auto": "auto"}


def _apply_defaults(pipeline: str, machine: Machine, prefix: str = "") -> None:
    """Load the machine's layout for `pipeline` into the controls (whose keys start with `prefix`)."""
    layout = pick_layout(pipeline, machine)
    st.session_state[f"{prefix}batch"] = min(layout.batch_size, BATCH_RANGE[1])
    st.session_state[f"{prefix}concurrency"] = layout.concurrency
    st.session_state[f"{prefix}block"] = layout.block_size_mb
    st.session_state[f"{prefix}images"] = min(layout.images, IMAGES_RANGE[1])
    st.session_state[f"{prefix}precision"] = layout.precision
    st.session_state[f"{prefix}defaults_for"] = machine.describe()
    if machine.gpus:
        st.session_state[f"{prefix}gpus"] = layout.num_gpus
        st.session_state[f"{prefix}calls"] = layout.calls_per_actor or 1


def concurrency_range(gpus: float, cpus: float) -> tuple[int, int]:
    """The concurrency sliders' bounds: past one actor per GPU (or per core) they only queue, but may be tried."""
    return 1, max(8, int(max(gpus * 4, cpus)))


def _follow_link(machine: Machine) -> None:
    """Settings in the page's address override the defaults; a wrong one is named in one line and ignored."""
    choices = {"model": MODEL_NAMES, "pipeline": list(PIPELINE_LABELS.values()), "precision": PRECISIONS}
    ranges = {
        "batch": BATCH_RANGE,
        "concurrency": concurrency_range(machine.gpus, machine.cpus),
        "block": BLOCK_RANGE,
        "images": IMAGES_RANGE,
    }
    settings, problems = link.read(st.query_params.to_dict(), choices, ranges)
    if "pipeline" in settings:
        _apply_defaults(settings["pipeline"], machine)
        settings["pipeline"] = next(label for label, name in PIPELINE_LABELS.items() if name == settings["pipeline"])
    st.session_state.update(settings)
    st.session_state["link_problems"] = problems


def _start_from_defaults(machine: Machine) -> None:
    """First drawing: the machine's layout, then the link's settings. Later: the layout anew if the machine changed."""
    if "batch" not in st.session_state:
        st.session_state.update(pipeline="Actor-based")
        _apply_defaults("actor", machine)
        _follow_link(machine)
    elif st.session_state.get("defaults_for") != machine.describe():
        _apply_defaults(PIPELINE_LABELS[st.session_state["pipeline"]], machine)
    for problem in st.session_state.get("link_problems", []):
        st.warning(plain(problem))


def _data_source(caption, gpu: bool) -> dict[str, str]:
    """The Data radio, the folder or URI field when it asks for one, and (with a GPU) where files are decoded."""
    data = DATA_LABELS[st.radio("Data", list(DATA_LABELS), key="data")]
    if data == "path":
        data = st.text_input("Folder or URI of images", key="data_path", placeholder="/data/images or s3://…").strip()
    caption("Synthetic skips decoding; JPEG files make the decode cost real.")
    if not gpu:
        return {"data": data, "decode": "auto"}  # CPU actors: decoded in the read tasks
    decode = DECODE_LABELS[st.radio("Decode on", list(DECODE_LABELS), index=2, key="decode", horizontal=True)]
    caption("Where files become images: auto decodes them on the GPU, inside the model's actors, when they have one.")
    return {"data": data, "decode": decode}


def weights_line(model: str) -> str:
    """Which weights a run of `model` gets here, and what random ones mean."""
    if weights_kind(model) == "pretrained":
        return "pretrained weights"
    return "random weights: same speed, meaningless labels"


def run_controls(machine: Machine, teach: bool = True) -> RunConfig:
    """Draw the controls and return the (unvalidated) config they describe; the page's address follows them.

    The defaults are the machine's layout (engine.core.defaults); they are drawn anew when the machine
    turns out different once Ray is up. `teach`: each control's one line of the lesson under it.
    """
    caption = st.caption if teach else (lambda *args, **kwargs: None)
    _start_from_defaults(machine)
    gpus, cpus = machine.gpus, machine.cpus
    model = st.selectbox("Model", MODEL_NAMES, key="model")
    info = MODELS[model]
    caption(f"{info.params_millions:g} M parameters · {info.weights_mb:g} MB of weights · {weights_line(model)}")
    pipeline = st.radio(
        "Pipeline",
        list(PIPELINE_LABELS),
        key="pipeline",
        horizontal=True,
        on_change=lambda: _apply_defaults(PIPELINE_LABELS[st.session_state["pipeline"]], machine),
    )
    caption("Naive rebuilds the model for every batch; actors load it once and keep it warm.")
    stages = STAGE_LABELS[st.radio("Stages", list(STAGE_LABELS), key="stages")]
    extra = _stage_controls(stages, model, cpus, caption)
    st.slider("Batch size", *BATCH_RANGE, key="batch")
    caption("Bigger batches keep a GPU busy until its memory runs out; on a CPU the gain flattens early.")
    st.slider("Concurrency", *concurrency_range(gpus, cpus), key="concurrency")
    caption("Workers at once. Past one actor per GPU (or per spare core) they only queue.")
    st.slider("Block size (MB)", *BLOCK_RANGE, key="block")
    caption("Smaller blocks mean more tasks in parallel and smoother streaming; bigger ones, less overhead.")
    st.slider("Images", *IMAGES_RANGE, step=16, key="images")
    num_gpus = 0.0
    if gpus > 0:
        num_gpus = st.number_input("GPUs per actor", 0.0, 1.0 if gpus < 2 else float(gpus), step=0.25, key="gpus")
        caption("Fractions share a GPU: several actors on one GPU keep it busier. 0 runs on the CPU.")
    calls = None
    if gpus > 0 and PIPELINE_LABELS[pipeline] == "actor":
        calls = st.slider("Batches at once per actor", 1, LIMITS["calls_per_actor"][1], key="calls")
        caption("Threads in one actor: one batch copies to the GPU while the others compute.")
    precision = st.selectbox("Precision", PRECISIONS, key="precision")
    caption("bf16/fp16 roughly double GPU throughput; on a CPU fp32 is usually fastest.")
    source = _data_source(caption, gpus > 0)
    st.query_params.from_dict(
        link.write(
            {name: st.session_state[name] for name in ("model", "batch", "concurrency", "block", "images", "precision")}
            | {"pipeline": PIPELINE_LABELS[pipeline]}
            | ({"present": "1"} if not teach else {})
        )
    )
    return RunConfig(
        model=model,
        pipeline=PIPELINE_LABELS[pipeline],
        images=st.session_state["images"],
        batch_size=st.session_state["batch"],
        concurrency=st.session_state["concurrency"],
        block_size_mb=st.session_state["block"],
        num_gpus=float(num_gpus),
        precision=precision,
        stages=stages,
        calls_per_actor=calls,
        defaults=st.session_state.get("defaults_for") and pick_layout(PIPELINE_LABELS[pipeline], machine).describe(),
        **source,
        **extra,
    )


def _stage_controls(stages: str, model: str, cpus: float, caption=st.caption) -> dict:
    """The settings of the extra stage: the pre-processing stage's resources, or the second model."""
    if stages == "cpu_preprocess":
        cpus_per_task = st.slider("Pre-processing CPUs per task", 0.25, 4.0, 1.0, step=0.25, key="prep_cpus")
        tasks = st.slider("Pre-processing concurrency", 1, max(2, int(cpus) * 2), 2, key="prep_concurrency")
        caption("Decode and resize run as their own CPU tasks, so the model's workers only do inference.")
        return {"preprocess_cpus": cpus_per_task, "preprocess_concurrency": tasks}
    if stages == "ensemble":
        others = [m for m in MODEL_NAMES if m != model]
        second = st.selectbox("Second model", others, key="second_model")
        caption("Each model gets its own actor pool; the second averages its logits with the first's.")
        return {"second_model": second}
    return {}


IMAGE_SIZES = (64, 96, 128, 160, 224)


def plan_controls(machine: Machine) -> RunConfig:
    """The settings that shape a pipeline's plan and blocks, in two rows, for a page that explains more than it tunes.

    Synthetic images only: planning a JPEG run would first write its files.
    """
    gpus, cpus = machine.gpus, machine.cpus
    if st.session_state.get("an_defaults_for") != machine.describe():
        _apply_defaults("actor", machine, prefix="an_")
    main, extra_stage = st.columns([4, 1], gap="medium")
    top = main.columns(3)
    model = top[0].selectbox("Model", MODEL_NAMES, key="an_model")
    pipeline = top[1].radio(
        "Pipeline",
        list(PIPELINE_LABELS),
        index=1,
        key="an_pipeline",
        horizontal=True,
        on_change=lambda: _apply_defaults(PIPELINE_LABELS[st.session_state["an_pipeline"]], machine, prefix="an_"),
    )
    stages = STAGE_LABELS[top[2].selectbox("Stages", list(STAGE_LABELS), index=1, key="an_stages")]
    with extra_stage:
        extra = _stage_controls(stages, model, cpus)
    row = main.columns(6 if gpus > 0 else 5)
    row[0].slider("Batch size", *BATCH_RANGE, key="an_batch")
    row[1].slider("Concurrency", *concurrency_range(gpus, cpus), key="an_concurrency")
    row[2].slider("Block size (MB)", *BLOCK_RANGE, key="an_block")
    row[3].slider("Images", *IMAGES_RANGE, step=16, key="an_images")
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
        stages=stages,
        **extra,
    )


BATCH_CHOICES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
BLOCK_CHOICES = [1, 4, 16, 32, 64, 128, 256]


def sweep_controls(machine: Machine) -> tuple[RunConfig, list[int], list[int], list[int]]:
    """The sweep's fixed settings and its grid: (base config, batch sizes, concurrencies, block sizes)."""
    gpus, cpus = machine.gpus, machine.cpus
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
    layout = pick_layout(pipeline, machine)
    batches = st.multiselect("Batch sizes", BATCH_CHOICES, default=[16, 64, 256] if gpu else [8, 32], key="sw_batches")
    concurrency = st.multiselect(
        "Concurrency", list(range(1, concurrency_range(gpus, cpus)[1] + 1)), default=[1, 2], key="sw_concurrency"
    )
    blocks = st.multiselect("Block sizes (MB)", BLOCK_CHOICES, default=[layout.block_size_mb], key="sw_blocks")
    base = RunConfig(
        model=model,
        pipeline=pipeline,
        images=images,
        data=data,
        num_gpus=float(num_gpus),
        precision=precision,
        calls_per_actor=layout.calls_per_actor if num_gpus else None,
    )
    return base, sorted(batches), sorted(concurrency), sorted(blocks)
