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

from engine.config import RunConfig
from engine.data import rows_per_block

if TYPE_CHECKING:
    from engine.run import Run

# Streaming then materialized, each capped so the pair takes well under a minute on a 2-core CPU (resnet18)
BOTH_WAYS_IMAGES = 512
BOTH_WAYS_IMAGE_SIZE = 96  # px, or the smallest the model takes (ViT-B/16: 224)
BOTH_WAYS_BLOCK_MB = 1  # small blocks, so a streaming run has results to hand over before its end


@dataclass(frozen=True)
class Fusion:
    """One pair of adjacent operators that Ray's fusion rule considered, and what it decided."""

    upstream: str
    downstream: str
    fused: bool
    reason: str


@dataclass(frozen=True)
class PlanView:
    """The four plans Ray prints for `Dataset.explain()`, the operators that will run, and the fusion decisions."""

    logical: str
    optimized_logical: str
    physical: str
    optimized_physical: str
    operators: list[str]  # what executes, source first; a fused operator is named "A->B"
    fusions: list[Fusion]  # source first (the rule itself works upwards from the sink)


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
    """Plan the run `config` describes, exactly as Ray would, without executing it."""
    from ray.data._internal.dataset_repr import _format_operator_dag
    from ray.data._internal.logical.optimizers import LogicalOptimizer
    from ray.data._internal.planner import create_planner

    from engine.pipeline import build

    def text(plan) -> str:
        return _format_operator_dag(plan.dag, show_op_repr=True)[0].strip()

    logical = build(config, None, "plan")._logical_plan
    logical_text = text(logical)
    optimized = LogicalOptimizer().optimize(logical)
    physical, _ = create_planner().plan(optimized)
    physical_text = text(physical)  # before fusion: the rule rewires these operators in place
    fusions: list[Fusion] = []
    executed = _RecordingOptimizer(fusions).optimize(physical)
    return PlanView(
        logical=logical_text,
        optimized_logical=text(optimized),
        physical=physical_text,
        optimized_physical=text(executed),
        operators=[op.name for op in _source_first(executed.dag)],
        fusions=fusions[::-1],
    )


class _RecordingOptimizer:
    """Ray's physical optimizer with its fusion rule wrapped, so every decision it makes is kept with a reason."""

    def __init__(self, fusions: list[Fusion]) -> None:
        from ray.data._internal.logical.optimizers import PhysicalOptimizer, get_physical_ruleset
        from ray.data._internal.logical.rules.operator_fusion import FuseOperators

        seen: set[tuple[str, str]] = set()

        class RecordingFuse(FuseOperators):
            def _can_fuse(self, down_op, up_op) -> bool:
                fused = super()._can_fuse(down_op, up_op)
                if (up_op.name, down_op.name) not in seen:  # the optimizer re-checks pairs until nothing changes
                    seen.add((up_op.name, down_op.name))
                    reason = why_not_fused(up_op, down_op, self._op_map) or _fused_because(up_op, down_op)
                    fusions.append(Fusion(up_op.name, down_op.name, fused, reason))
                return fused

        rules = [RecordingFuse if rule is FuseOperators else rule for rule in get_physical_ruleset()]

        class Recording(PhysicalOptimizer):
            @property
            def rules(self):
                return [rule() for rule in rules]

        self._optimizer = Recording()

    def optimize(self, plan):
        return self._optimizer.optimize(plan)


def _source_first(op) -> list:
    """The operators that hold work (not the input buffer), from the source to the sink."""
    from ray.data._internal.execution.operators.input_data_buffer import InputDataBuffer

    ops = []
    for upstream in op.input_dependencies:
        ops += _source_first(upstream)
    return ops if isinstance(op, InputDataBuffer) else [*ops, op]


def _fused_because(up_op, down_op) -> str:
    from ray.data._internal.execution.operators.actor_pool_map_operator import ActorPoolMapOperator

    where = f"inside {down_op.name}'s actor pool" if isinstance(down_op, ActorPoolMapOperator) else "in the same tasks"
    return f"fused: {up_op.name} runs {where}; no object-store hop between them"


def _compute(strategy) -> str:
    from ray.data import ActorPoolStrategy

    if isinstance(strategy, ActorPoolStrategy):
        low, high = strategy.min_size, strategy.max_size
        return f"an actor pool of {low}" if low == high else f"an actor pool of {low}-{high}"
    return "tasks with no concurrency cap" if strategy.size is None else f"tasks, at most {strategy.size} at once"


def why_not_fused(up_op, down_op, op_map: dict) -> str | None:
    """Why Ray 2.60 would not fuse `up_op` into `down_op`, or None when it would.

    Mirrors `FuseOperators._can_fuse` (ray/data/_internal/logical/rules/operator_fusion.py)
    check by check and in the same order, reading the operators' real attributes:
    their physical kind, compute strategy, batch needs, remote args and block size.
    """
    from ray.data import ActorPoolStrategy
    from ray.data._internal.execution.operators.actor_pool_map_operator import ActorPoolMapOperator
    from ray.data._internal.execution.operators.base_physical_operator import AllToAllOperator
    from ray.data._internal.execution.operators.task_pool_map_operator import TaskPoolMapOperator
    from ray.data._internal.logical.operators import (
        AbstractMap,
        MapBatches,
        RandomShuffle,
        Repartition,
        StreamingRepartition,
    )

    up, down = up_op.name, down_op.name
    for op in (up_op, down_op):
        if not op.supports_fusion():
            return f"{op.name} ({type(op).__name__}) never fuses"
    if not isinstance(up_op, TaskPoolMapOperator):
        if isinstance(up_op, ActorPoolMapOperator):
            return f"{up} runs on an actor pool: Ray fuses tasks into what follows them, never an actor pool's output"
        return f"Ray fuses only a task-pool map into what follows; {up} is a {type(up_op).__name__}"
    if not isinstance(down_op, (TaskPoolMapOperator, ActorPoolMapOperator, AllToAllOperator)):
        return f"{down} is a {type(down_op).__name__}: only maps and shuffles take a fused map"
    if isinstance(down_op, AllToAllOperator) and any(isinstance(o, AbstractMap) for o in down_op._logical_operators):
        return f"{down} already holds a fused map and takes no second one"
    if up_op.get_additional_split_factor() > 1:
        return f"{up} splits each block in {up_op.get_additional_split_factor()} to reach its parallelism"
    up_logical, down_logical = op_map[up_op], op_map[down_op]
    if not down_logical.input_dependencies:
        return f"{down} takes no input"
    if isinstance(up_logical, AbstractMap) and isinstance(down_logical, AbstractMap):
        up_c, down_c = up_logical.compute, down_logical.compute  # upstream is a task pool (checked above)
        if isinstance(down_c, ActorPoolStrategy):
            if up_c.size is not None and up_c.size != down_c.max_size:
                return f"{up} runs as {_compute(up_c)} but {down} as {_compute(down_c)}: the sizes must match"
        elif up_c.size != down_c.size:
            return f"different concurrency: {up} runs as {_compute(up_c)}, {down} as {_compute(down_c)}"
        rows = down_logical.min_rows_per_bundled_input
        if up_logical.can_modify_num_rows and not isinstance(up_logical, MapBatches) and rows is not None:
            return (
                f"{up} may change the row count while {down} needs batches of {rows} rows: "
                f"fused, {up} would lose its parallelism or break the batches"
            )
    elif not isinstance(up_logical, AbstractMap) or not (
        isinstance(down_logical, RandomShuffle) or (isinstance(down_logical, Repartition) and down_logical.shuffle)
    ):
        return f"Ray fuses a map only into a map, a random shuffle or a shuffling repartition, not {down}"
    if reason := _remote_args_differ(up_logical, down_logical):
        return reason
    up_size, down_size = up_op.target_max_block_size_override, down_op.target_max_block_size_override
    if up_size is not None and down_size is not None and up_size != down_size:
        return f"different target block sizes: {up_size / 2**20:g} MB vs {down_size / 2**20:g} MB"
    if isinstance(down_logical, StreamingRepartition):
        target = down_logical.target_num_rows_per_block
        if not isinstance(up_logical, MapBatches) or not target or target <= 0:
            return f"{down} fuses only onto a map_batches with a row target"
        batch = up_logical.batch_size
        if down_logical.strict and not (isinstance(batch, int) and batch % target == 0):
            return f"strict {down} needs {up}'s batch size ({batch}) to be a multiple of {target} rows"
    elif isinstance(up_logical, StreamingRepartition):
        return f"{up} fuses with nothing downstream of it"
    return None


def _remote_args_differ(up_logical, down_logical) -> str | None:
    """The resources that stop a fusion: Ray merges two stages only when they ask for the same ones."""
    from ray.data._internal.logical.operators import AbstractMap
    from ray.data._internal.logical.rules.operator_fusion import (
        INHERITABLE_REMOTE_ARGS,
        _canonicalize,
        are_op_remote_args_compatible,
    )

    if are_op_remote_args_compatible(up_logical, down_logical):
        return None
    for op in (up_logical, down_logical):
        if isinstance(op, AbstractMap) and op.ray_remote_args_fn:
            return f"{op.name} sets its resources per task (ray_remote_args_fn), so they cannot be matched"
    up_args, down_args = _canonicalize(up_logical.ray_remote_args), _canonicalize(down_logical.ray_remote_args)
    for key in INHERITABLE_REMOTE_ARGS:  # the downstream stage inherits these when it does not set them
        if key in up_args and key not in down_args:
            down_args[key] = up_args[key]
    differ = [f"{k} {up_args.get(k, '-')} vs {down_args.get(k, '-')}" for k in sorted(set(up_args) | set(down_args))
              if up_args.get(k) != down_args.get(k)]  # fmt: skip
    return f"different resources per worker: {'; '.join(differ)}"


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
    from ray.data._internal.execution.resource_manager import ResourceManager

    from engine.pipeline import configure_context

    configure_context(config)  # the context a run of `config` would carry
    ctx = DataContext.get_current()
    cluster = ray.cluster_resources().get("object_store_memory") or 0.0
    if not cluster:
        return None
    if ctx.override_object_store_memory_limit_fraction is not None:
        fraction, source = ctx.override_object_store_memory_limit_fraction, "DataContext override"
    elif ctx.op_resource_reservation_enabled:
        fraction = ResourceManager.DEFAULT_OBJECT_STORE_MEMORY_LIMIT_FRACTION
        source = "Ray Data's default with per-operator reservations"
    else:
        fraction = ResourceManager.DEFAULT_OBJECT_STORE_MEMORY_LIMIT_FRACTION_NO_RESERVATION
        source = "Ray Data's default without per-operator reservations"
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
    rows: list[OperatorTime] = []

    def walk(summary) -> None:
        for parent in summary.parents:
            walk(parent)
        extra = summary.extra_metrics or {}
        for op in summary.operators_stats:
            rows.append(
                OperatorTime(
                    operator=op.operator_name,
                    tasks=extra.get("num_tasks_finished"),
                    wall_s=op.time_total_s,
                    task_wall_s=op.wall_time.sum if op.wall_time else None,
                    task_cpu_s=op.cpu_time.sum if op.cpu_time else None,
                    submission_backpressure_s=extra.get("task_submission_backpressure_time"),
                    output_backpressure_s=extra.get("task_output_backpressure_time"),
                    rows_out=op.output_num_rows.sum if op.output_num_rows else None,
                    blocks_out=op.output_num_rows.count if op.output_num_rows else None,
                    bytes_out=op.output_size_bytes.sum if op.output_size_bytes else None,
                )
            )

    walk(dataset.get_stats_summary())
    return rows


def both_ways(config: RunConfig) -> tuple[RunConfig, RunConfig]:
    """The same modest run twice: streaming (results read as they come), then materialized (all stages first)."""
    from torchvision.models import get_model_weights

    smallest = max(get_model_weights(config.model).DEFAULT.meta.get("min_size", (1, 1)))
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
