"""Turning a RunConfig into the Ray Data pipeline it describes.

`build` returns the lazy Dataset; `code_snippet` returns the same pipeline as
plain Ray Data code a user can copy, so the app can show exactly what ran.
"""

from __future__ import annotations

from engine.core.config import RunConfig
from engine.core.data import build_dataset
from engine.core.decode import decodes_in_actors
from engine.core.inference import Predictor, naive_predict

MIN_CPU_SHARE = 0.1  # the smallest CPU slice one CPU-only actor gets


def configure_context(config: RunConfig) -> None:
    """Block size and object-store limit are Ray Data context settings."""
    from ray.data import DataContext, ExecutionResources

    ctx = DataContext.get_current()
    ctx.target_max_block_size = config.block_size_mb * 2**20
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    limit = config.object_store_limit_mb
    ctx.execution_options.resource_limits = (
        ExecutionResources.for_limits(object_store_memory=limit * 2**20) if limit else ExecutionResources.for_limits()
    )


def cpu_actor_share(actors: int) -> float:
    """CPUs each CPU-only actor asks for: the cluster's CPUs less one per node for reading, shared out.

    Whole-CPU actors would hold every core and starve the read tasks that feed
    them, so a 2-core laptop with 2 actors would wait forever. A read task needs a
    whole CPU on one node: with one CPU per node left over in all, some node always
    has one, wherever Ray places the actors (with one left over in all, 4 actors of
    0.75 CPU on two 2-CPU nodes left 0.5 on each, and the run waited forever).
    Below a tenth of a CPU each, the actors could not all start: that is refused in one line.
    """
    from engine.observe.cluster import ClusterError, nodes

    cpu_nodes = [n.cpus for n in nodes() if n.alive and n.cpus > 0]
    spare = sum(cpu_nodes) - len(cpu_nodes)
    share = min(1.0, spare / actors)
    if share < MIN_CPU_SHARE:
        fit = max(1, int(spare / MIN_CPU_SHARE))
        raise ClusterError(
            f"asked for {actors} CPU actors but {sum(cpu_nodes):g} CPUs on {len(cpu_nodes)} node(s) fit at most "
            f"{fit}; lower concurrency or use GPUs"
        )
    return round(share, 2)


def build(config: RunConfig, reporter, run_id: str, progress=None):
    """The lazy Dataset of predictions for this config: data stages, then one or two model stages."""
    from ray.data import TaskPoolStrategy

    configure_context(config)
    ds = build_dataset(config, progress, reporter, run_id)
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
    decode = decodes_in_actors(config)  # then the first model stage takes the files' bytes
    if config.stages == "ensemble":
        ds = _model_stage(ds, config, config.model, reporter, run_id, emit_logits=True, decode=decode)
        return _model_stage(ds, config, config.second_model, reporter, run_id)
    return _model_stage(ds, config, config.model, reporter, run_id, decode=decode)


def _model_stage(
    ds, config: RunConfig, model: str, reporter, run_id: str, emit_logits: bool = False, decode: bool = False
):
    """One actor pool holding `model`, with the run's batch size, concurrency and GPUs per actor.

    With `decode` its actors decode the files themselves (`Predictor`'s `decode_size`).
    """
    return ds.map_batches(
        Predictor,
        num_cpus=None if config.num_gpus else cpu_actor_share(config.concurrency * config.model_stages),
        fn_constructor_kwargs={
            "model_name": model,
            "weights_file": config.weights_file if model == config.model else None,
            "precision": config.precision,
            "reporter": reporter,
            "run_id": run_id,
            "emit_logits": emit_logits,
            "decode_size": config.image_size if decode else None,
            "skip_bad": config.on_bad_file == "skip",
        },
        batch_size=config.batch_size,
        compute=actor_pool(config),
        num_gpus=config.num_gpus,
        batch_format="numpy",
    )


def actor_pool(config: RunConfig):
    """A fixed pool of `concurrency` actors, each running `actor_calls` batches at once on threads.

    Ray Data runs an actor's UDF on one thread unless `enable_true_multi_threading`
    is set, even with several concurrent calls: only the batching overlaps. With it,
    one actor can copy (or decode) the next batch on the GPU while the previous one computes.
    """
    from ray.data import ActorPoolStrategy

    calls = config.actor_calls
    return ActorPoolStrategy(
        size=config.concurrency, max_concurrent_calls_per_actor=calls, enable_true_multi_threading=calls > 1
    )
