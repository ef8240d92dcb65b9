"""Turning a RunConfig into the Ray Data pipeline it describes.

`build` returns the lazy Dataset; `code_snippet` returns the same pipeline as
plain Ray Data code a user can copy, so the app can show exactly what ran.
"""

from __future__ import annotations

from engine.config import RunConfig
from engine.data import build_dataset
from engine.inference import Predictor, naive_predict


def configure_context(config: RunConfig) -> None:
    """Block size and object-store limit are Ray Data context settings."""
    from ray.data import DataContext
    from ray.data._internal.execution.interfaces.execution_options import ExecutionResources

    ctx = DataContext.get_current()
    ctx.target_max_block_size = config.block_size_mb * 2**20
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    limit = config.object_store_limit_mb
    ctx.execution_options.resource_limits = (
        ExecutionResources.for_limits(object_store_memory=limit * 2**20) if limit else ExecutionResources.for_limits()
    )


def cpu_actor_share(concurrency: int) -> float:
    """CPUs each CPU-only actor asks for: the cluster's CPUs less one for reading, shared out.

    Whole-CPU actors would hold every core and starve the read tasks that feed
    them, so a 2-core laptop with 2 actors would wait forever.
    """
    from engine.cluster import nodes

    cpus = sum(n.cpus for n in nodes() if n.alive)
    return round(max(0.1, min(1.0, (cpus - 1) / concurrency)), 2)


def build(config: RunConfig, reporter, run_id: str, progress=None):
    """The lazy Dataset of predictions for this config."""
    from ray.data import ActorPoolStrategy, TaskPoolStrategy

    configure_context(config)
    ds = build_dataset(config, progress)
    if config.pipeline == "naive":
        return ds.map_batches(
            naive_predict,
            fn_kwargs={
                "model_name": config.model,
                "weights_file": config.weights_file,
                "reporter": reporter,
                "run_id": run_id,
            },
            batch_size=config.batch_size,
            compute=TaskPoolStrategy(size=config.concurrency),
            num_gpus=config.num_gpus,
            batch_format="numpy",
        )
    return ds.map_batches(
        Predictor,
        num_cpus=None if config.num_gpus else cpu_actor_share(config.concurrency),
        fn_constructor_kwargs={
            "model_name": config.model,
            "weights_file": config.weights_file,
            "precision": config.precision,
            "reporter": reporter,
            "run_id": run_id,
        },
        batch_size=config.batch_size,
        compute=ActorPoolStrategy(size=config.concurrency, max_concurrent_calls_per_actor=config.actor_calls),
        num_gpus=config.num_gpus,
        batch_format="numpy",
    )
