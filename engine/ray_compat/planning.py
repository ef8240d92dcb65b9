"""Ray Data's planner seen from outside: the plans it prints, each fusion it decides and why, its store budget."""

from __future__ import annotations

import contextlib
import io
import threading
from dataclasses import dataclass

from engine.ray_compat.support import private

PLAN_TITLES = ("Logical Plan", "Logical Plan (Optimized)", "Physical Plan", "Physical Plan (Optimized)")
_stdout_lock = threading.Lock()


@dataclass(frozen=True)
class Fusion:
    """One pair of adjacent operators that Ray's fusion rule considered, and what it decided."""

    upstream: str
    downstream: str
    fused: bool
    reason: str


def explain_text(dataset) -> str:
    """What `Dataset.explain()` (public API) prints: the four plans; nothing executes."""
    out = io.StringIO()
    with _stdout_lock, contextlib.redirect_stdout(out):
        dataset.explain()
    return out.getvalue().strip()


def plan_texts(dataset) -> dict[str, str]:
    """The four plans of `explain_text`, by title (PLAN_TITLES)."""
    sections: dict[str, str] = {}
    title = None
    for line in explain_text(dataset).splitlines():
        stripped = line.strip()
        if stripped.startswith("--------") and stripped.endswith("--------"):
            title = stripped.strip("- ").strip()
            sections[title] = ""
        elif title is not None:
            sections[title] += line + "\n"
    return {name: text.strip() for name, text in sections.items()}


def executed_operators(optimized_physical: str) -> list[str]:
    """The operators that will run, source first, from the optimized physical plan's text ("Kind[name]" lines)."""
    names = []
    for line in optimized_physical.splitlines():
        node = line.strip().removeprefix("+-").strip()
        kind, _, rest = node.partition("[")
        if rest and kind != "InputDataBuffer":
            names.append(rest.rsplit("]", 1)[0])
    return names[::-1]


@private("fusion reasons")
def fusion_trace(dataset) -> list[Fusion]:
    """Every fusion decision Ray's physical optimizer makes for `dataset`, source first, each with a reason.

    Ray's own rule (FuseOperators) decides; each decision is recorded as it is made, and its reason
    comes from `why_not_fused`, a check-by-check mirror of the rule that a test holds to Ray's verdicts.
    """
    from ray.data._internal.logical.optimizers import LogicalOptimizer, PhysicalOptimizer, get_physical_ruleset
    from ray.data._internal.logical.rules.operator_fusion import FuseOperators
    from ray.data._internal.planner import create_planner

    fusions: list[Fusion] = []
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

    physical, _ = create_planner().plan(LogicalOptimizer().optimize(dataset._logical_plan))
    Recording().optimize(physical)
    return fusions[::-1]


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
    return _streaming_repartition_rule(up, down, up_logical, down_logical)


def _streaming_repartition_rule(up: str, down: str, up_logical, down_logical) -> str | None:
    """The rule's last check: a streaming repartition fuses only onto a map_batches with a row target."""
    from ray.data._internal.logical.operators import MapBatches, StreamingRepartition

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


@private("object-store budget rule")
def store_budget_fraction(ctx) -> tuple[float, str]:
    """The share of the cluster's object store Ray Data's executor allows (ResourceManager.get_global_limits)."""
    from ray.data._internal.execution.resource_manager import ResourceManager

    if ctx.override_object_store_memory_limit_fraction is not None:
        return ctx.override_object_store_memory_limit_fraction, "DataContext override"
    if ctx.op_resource_reservation_enabled:
        return ResourceManager.DEFAULT_OBJECT_STORE_MEMORY_LIMIT_FRACTION, (
            "Ray Data's default with per-operator reservations"
        )
    return ResourceManager.DEFAULT_OBJECT_STORE_MEMORY_LIMIT_FRACTION_NO_RESERVATION, (
        "Ray Data's default without per-operator reservations"
    )
