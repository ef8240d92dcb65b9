"""What a pipeline is made of: its plans, which stages Ray fused and why, its blocks, budget and stage times.

Everything is read from Ray Data itself: the plans come from its own planner and
optimizer without running anything, each fusion decision is the one Ray's
`FuseOperators` rule made (recorded as it makes it), the object-store budget
follows `ResourceManager.get_global_limits`, and the stage times are a finished
run's own stats. Nothing is estimated; a figure Ray does not give is None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine import ray_compat
from engine.core.config import RunConfig
from engine.core.data import rows_per_block
from engine.core.decode import decodes_in_actors, nvimgcodec_installed
from engine.core.lean_import import torchvision

if TYPE_CHECKING:
    from engine.execution.run import Run

# Streaming then materialized, each capped so the pair takes well under a minute on a 2-core CPU (resnet18)
BOTH_WAYS_IMAGES = 512
BOTH_WAYS_IMAGE_SIZE = 96  # px, or the smallest the model takes (ViT-B/16: 224)
BOTH_WAYS_BLOCK_MB = 1  # small blocks, so a streaming run has results to hand over before its end


@dataclass(frozen=True)
class PlanView:
    """The four plans Ray prints for `Dataset.explain()`, the operators that will run, and the fusion decisions."""

    logical: str
    optimized_logical: str
    physical: str
    optimized_physical: str
    operators: list[str]  # what executes, source first; a fused operator is named "A->B"
    fusions: list[ray_compat.Fusion]  # source first (the rule itself works upwards from the sink)


@dataclass(frozen=True)
class BlockLayout:
    """How the images are cut into blocks, against the batch the model takes."""

    rows_per_block: int | None  # None: the reader decides at run time (files, not synthetic images)
    blocks: int | None
    block_bytes: int | None  # one block of images at the model's input size
    target_block_bytes: int  # DataContext.target_max_block_size: Ray splits an output block above it
    batch_size: int


@dataclass(frozen=True)
class StoreBudget:
    """The object-store memory Ray Data's streaming executor lets a pipeline hold on this cluster."""

    cluster_bytes: float  # every alive node's object store
    fraction: float
    fraction_source: str
    limit_bytes: float | None  # an explicit execution_options.resource_limits cap, if set
    budget_bytes: float


@dataclass(frozen=True)
class OperatorTime:
    """One executed operator in a finished run, from Ray Data's stats."""

    operator: str
    tasks: int | None
    wall_s: float  # from its first task's start to its last task's end
    task_wall_s: float | None  # summed over its tasks
    task_cpu_s: float | None
    submission_backpressure_s: float | None  # the executor held back new tasks (budget or concurrency)
    output_backpressure_s: float | None  # the executor stopped reading its tasks' outputs (downstream full)
    rows_out: int | None
    blocks_out: int | None
    bytes_out: int | None


@dataclass(frozen=True)
class StoreUse:
    """Object-store use of one run of a streaming-vs-materialized pair."""

    run_id: str
    materialized: bool
    status: str
    seconds: float | None
    peak_bytes: int | None
    first_read_s: float | None  # after Launch, when this process received its first result
    output_bytes: int | None  # what the last operator produced: all of it is held at once when materialized


def explain(config: RunConfig) -> PlanView:
    """Plan the run `config` describes, exactly as Ray would, without executing it.

    `fusions` is empty where this Ray cannot say why it fused what it did (the plans still show what it fused).
    """
    from engine.core.pipeline import build

    dataset = build(config, None, "plan")
    texts = ray_compat.plan_texts(dataset)
    logical, optimized_logical, physical, optimized_physical = (texts.get(t, "") for t in ray_compat.PLAN_TITLES)
    return PlanView(
        logical=logical,
        optimized_logical=optimized_logical,
        physical=physical,
        optimized_physical=optimized_physical,
        operators=ray_compat.executed_operators(optimized_physical),
        fusions=ray_compat.fusion_trace(dataset) or [],
    )


def decode_placement(config: RunConfig) -> str:
    """Where image files are decoded with these settings, in a sentence (for synthetic images: where files would be)."""
    synthetic = config.data == "synthetic"
    lead = "JPEG files are decoded"
    if synthetic:
        lead = "Synthetic images need no decoding; with these settings, JPEG files would be decoded"
    if decodes_in_actors(config.replace(data="jpeg") if synthetic else config):
        return (
            f"{lead} on the GPU inside the model's actors ({gpu_decoder_name()}), a batch at a time on each "
            "call's CUDA stream, so one batch decodes while another runs through the model; other formats and "
            "JPEGs the GPU cannot read go to PIL on the CPU, file by file."
        )
    where = "the pre-processing stage's tasks" if config.stages == "cpu_preprocess" else "the read tasks"
    return f"{lead} on the CPU in {where} (PIL, like every other format), and reach the model as images at its size."


def gpu_decoder_name() -> str:
    """The GPU decoder the actors would pick, as far as this machine can tell (engine.core.decode.pick)."""
    from engine.observe import nvml

    if not nvimgcodec_installed():
        return "torchvision's nvJPEG: nvImageCodec is not installed"
    gpus = nvml.read_gpus()
    if not gpus:
        return "nvImageCodec on GPUs with JPEG engines, else torchvision's nvJPEG"
    if any(g.jpeg_util_pct is not None for g in gpus):
        return "nvImageCodec, on the GPU's hardware JPEG engines"
    return "torchvision's nvJPEG: this GPU has no JPEG engines"


def block_layout(config: RunConfig) -> BlockLayout:
    """Blocks for synthetic images come from `rows_per_block`; a reader of files decides its own."""
    target = config.block_size_mb * 2**20
    if config.data != "synthetic":
        return BlockLayout(None, None, None, target, config.batch_size)
    rows = rows_per_block(config)
    return BlockLayout(
        rows_per_block=rows,
        blocks=math.ceil(config.images / rows),
        block_bytes=rows * config.image_size * config.image_size * 3,
        target_block_bytes=target,
        batch_size=config.batch_size,
    )


def store_budget(config: RunConfig) -> StoreBudget | None:
    """Ray 2.60's rule (ResourceManager.get_global_limits): min(cap, cluster store x fraction) - excluded.

    The fraction is DataContext.override_object_store_memory_limit_fraction when
    set, else 0.5 with per-operator reservations on (the default) or 0.25 without.
    The cluster's store is what a lone execution gets; Ray's autoscaling
    coordinator shares it out when several run at once. None when the cluster
    reports no object store.
    """
    import ray
    from ray.data import DataContext

    from engine.core.pipeline import configure_context

    configure_context(config)  # the context a run of `config` would carry
    ctx = DataContext.get_current()
    cluster = ray.cluster_resources().get("object_store_memory") or 0.0
    rule = ray_compat.store_budget_fraction(ctx)
    if not cluster or rule is None:
        return None
    fraction, source = rule
    options = ctx.execution_options
    cap = options.resource_limits.object_store_memory
    limit = None if cap is None or math.isinf(cap) else cap
    budget = min(math.inf if limit is None else limit, cluster * fraction)
    budget = max(0.0, budget - (options.exclude_resources.object_store_memory or 0.0))
    return StoreBudget(cluster, fraction, source, limit, budget)


def latest_finished(runs: list[Run]) -> Run | None:
    """The newest run that finished and kept its dataset (its stats are there)."""
    return next((r for r in reversed(runs) if r.status == "finished" and r.dataset is not None), None)


def operator_times(run: Run) -> list[OperatorTime]:
    """Per-operator times of a finished run from Ray Data's structured stats, source first.

    `Dataset.get_stats_summary()` reads a streamed dataset's stats from its
    executor's final account: the copy the dataset keeps was taken at its first
    batch, so its task counts and backpressure times stop there.
    """
    dataset = run.dataset if run.materialized is None else run.materialized
    return [OperatorTime(**row) for row in ray_compat.operator_stats(dataset) or []]


def both_ways(config: RunConfig) -> tuple[RunConfig, RunConfig]:
    """The same modest run twice: streaming (results read as they come), then materialized (all stages first)."""
    smallest = max(torchvision().models.get_model_weights(config.model).DEFAULT.meta.get("min_size", (1, 1)))
    base = config.replace(
        images=min(config.images, BOTH_WAYS_IMAGES),
        image_size=max(min(config.image_size, BOTH_WAYS_IMAGE_SIZE), smallest),
        block_size_mb=min(config.block_size_mb, BOTH_WAYS_BLOCK_MB),
        materialize=False,
    )
    return base, base.replace(materialize=True)


def store_use(run: Run) -> StoreUse:
    """Peak object-store use from the run's own samples, and when its first result reached this process."""
    points = run.timeseries()
    used = [p["object_store_used_bytes"] for p in points if p.get("object_store_used_bytes") is not None]
    first = run.marks.get("first_read")
    output = None
    if run.status == "finished" and run.dataset is not None:
        times = operator_times(run)
        output = times[-1].bytes_out if times else None
    return StoreUse(
        run_id=run.id,
        materialized=run.config.materialize,
        status=run.status,
        seconds=(run.summary or {}).get("seconds"),
        peak_bytes=max(used) if used else None,
        first_read_s=round(first - run.launched_at, 3) if first else None,
        output_bytes=output,
    )
