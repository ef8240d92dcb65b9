"""The tutorial's decision framework: from a machine and a model to concurrency, batch size and block size.

Pure arithmetic, so the CLI, the Advisor page and the tests all get the same
answer, each figure with the formula that produced it. A node's memory is
split the way Ray splits it by default: 70 % heap (where actors hold their
model and batches) and 30 % object store (where blocks wait between stages).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from engine.core.config import LIMITS, RunConfig

HEAP_SHARE, OBJECT_STORE_SHARE = 0.7, 0.3
HEADROOM = 0.9  # use 90 % of the GPU memory left after the model: fragmentation and CUDA's own buffers need the rest
BATCHES_PER_BLOCK = 4  # a block holds about four batches of input images
CONSTRAINTS = ("gpus", "memory", "object_store")  # also the order that breaks ties for "binding"
SAMPLE_MB, BATCH_MEM_GB, IMAGE_SIZE = 3.0, 2.0, 224  # the inputs' defaults: a 224 px image classifier
PLANNED_GPU = {"gpus": 1, "gpu_mem_gb": 16.0}  # what the inputs start at where this machine has no NVIDIA GPU
CPU_VERIFY_IMAGES = 256  # a Verify run on the CPU stays this small: the advised batch is sized for a GPU
EPSILON = 1e-9


class AdviceError(ValueError):
    """Inputs the framework cannot answer for; the message is one line."""


@dataclass(frozen=True)
class Advice:
    """The recommended layout, each concurrency constraint with its formula, and the inputs it came from."""

    concurrency: int
    batch_size: int
    block_size_mb: int
    blocks_in_flight: int
    binding: str
    constraints: dict[str, dict[str, Any]]
    sizing: dict[str, str]  # how batch_size and block_size_mb were found, numbers filled in
    inputs: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def advise(
    gpus: int,
    gpu_mem_gb: float,
    node_mem_gb: float,
    model_size_gb: float,
    sample_mb: float = SAMPLE_MB,
    batch_mem_gb: float = BATCH_MEM_GB,
    image_size: int = IMAGE_SIZE,
    calls_per_actor: int = 1,
) -> Advice:
    """Concurrency, batch size and block size for one node, or `AdviceError` naming the bad input.

    `sample_mb` is the GPU memory one sample needs (input plus activations);
    `batch_mem_gb` is the host memory an actor needs for a batch beside its model.
    """
    _check_whole("gpus", gpus, 1, LIMITS["concurrency"][1])
    for name, value in (
        ("gpu_mem_gb", gpu_mem_gb),
        ("node_mem_gb", node_mem_gb),
        ("model_size_gb", model_size_gb),
        ("sample_mb", sample_mb),
        ("batch_mem_gb", batch_mem_gb),
    ):
        _check_positive(name, value)
    _check_whole("image_size", image_size, *LIMITS["image_size"])
    _check_whole("calls_per_actor", calls_per_actor, *LIMITS["calls_per_actor"])

    batch_size, batch_formula = _batch_size(gpu_mem_gb, model_size_gb, sample_mb)
    block_size_mb, block_formula = _block_size(batch_size, image_size)
    # Ray 2.60's ActorPoolMapOperator lets each actor hold max_tasks_in_flight_per_actor blocks, which defaults to
    # max_concurrency * DEFAULT_ACTOR_MAX_TASKS_IN_FLIGHT_TO_MAX_CONCURRENCY_FACTOR (= 2, ray/data/context.py):
    # one block being worked on per concurrent call, and one queued behind it.
    blocks_in_flight = 2 * calls_per_actor
    constraints = _constraints(gpus, node_mem_gb, model_size_gb, batch_mem_gb, blocks_in_flight, block_size_mb)
    lowest = min(c["value"] for c in constraints.values())
    binding = next(name for name in CONSTRAINTS if constraints[name]["value"] == lowest)
    return Advice(
        concurrency=max(1, lowest),
        batch_size=batch_size,
        block_size_mb=block_size_mb,
        blocks_in_flight=blocks_in_flight,
        binding=binding,
        constraints=constraints,
        sizing={"batch_size": batch_formula, "block_size_mb": block_formula},
        inputs={
            "gpus": gpus,
            "gpu_mem_gb": gpu_mem_gb,
            "node_mem_gb": node_mem_gb,
            "model_size_gb": model_size_gb,
            "sample_mb": sample_mb,
            "batch_mem_gb": batch_mem_gb,
            "image_size": image_size,
            "calls_per_actor": calls_per_actor,
        },
    )


def _batch_size(gpu_mem_gb: float, model_size_gb: float, sample_mb: float) -> tuple[int, str]:
    """The largest power of two that fits the GPU memory left after the model, with its formula."""
    free_gb = gpu_mem_gb - model_size_gb
    if free_gb <= 0:
        raise AdviceError(f"the model does not fit in GPU memory (model {model_size_gb:g} GB, GPU {gpu_mem_gb:g} GB)")
    samples = free_gb * 1024 * HEADROOM / sample_mb
    if samples < 1:
        raise AdviceError(
            f"one sample ({sample_mb:g} MB) does not fit in the GPU memory left after the model ({free_gb:g} GB)"
        )
    max_batch = LIMITS["batch_size"][1]
    batch_size = min(1 << (int(samples).bit_length() - 1), max_batch)  # largest power of two <= samples
    formula = (
        f"largest power of 2 <= ({gpu_mem_gb:g} GB GPU - {model_size_gb:g} GB model) x 1024 x {HEADROOM:g} "
        f"/ {sample_mb:g} MB per sample = {samples:.1f} -> {batch_size}"
    )
    if batch_size == max_batch:
        formula += f" (at most {max_batch})"
    return batch_size, formula


def _block_size(batch_size: int, image_size: int) -> tuple[int, str]:
    """A block of about BATCHES_PER_BLOCK batches of input images, in MB, with its formula."""
    image_bytes = image_size * image_size * 3
    block_size_mb = math.ceil(BATCHES_PER_BLOCK * batch_size * image_bytes / 2**20)
    formula = f"ceil({BATCHES_PER_BLOCK} batches x {batch_size} images x {image_size}x{image_size}x3 B / 2^20)"
    max_block = LIMITS["block_size_mb"][1]
    if block_size_mb > max_block:
        formula += f" = {block_size_mb} -> at most {max_block}"
        block_size_mb = max_block
    return block_size_mb, formula + f" = {block_size_mb} MB"


def _constraints(
    gpus: int, node_mem_gb: float, model_size_gb: float, batch_mem_gb: float, blocks_in_flight: int, block_mb: int
) -> dict[str, dict[str, Any]]:
    """How many actors each limit allows: the GPUs, the heap, the object store; each with its formula."""
    heap_gb = HEAP_SHARE * node_mem_gb
    store_mb = OBJECT_STORE_SHARE * node_mem_gb * 1024
    per_actor_gb = model_size_gb + batch_mem_gb
    in_flight_mb = blocks_in_flight * block_mb
    by_memory, by_store = _floor(heap_gb / per_actor_gb), _floor(store_mb / in_flight_mb)
    return {
        "gpus": {"value": gpus, "formula": f"one actor per GPU = {gpus}"},
        "memory": {
            "value": by_memory,
            "formula": (
                f"floor({HEAP_SHARE:g} x {node_mem_gb:g} GB heap / ({model_size_gb:g} GB model + {batch_mem_gb:g} GB "
                f"batch)) = floor({heap_gb:.1f} / {per_actor_gb:g}) = {by_memory}"
            ),
        },
        "object_store": {
            "value": by_store,
            "formula": (
                f"floor({OBJECT_STORE_SHARE:g} x {node_mem_gb:g} GB x 1024 object store / ({blocks_in_flight} blocks "
                f"in flight x {block_mb} MB)) = floor({store_mb:.1f} / {in_flight_mb}) = {by_store}"
            ),
        },
    }


def explain(advice: Advice) -> str:
    """One sentence on why the binding constraint binds, and what would loosen it."""
    i, n = advice.inputs, advice.constraints[advice.binding]["value"]
    if advice.binding == "gpus":
        text = f"The GPUs bind: one actor per GPU gives {n}, and the node's memory would allow more."
    elif advice.binding == "memory":
        text = (
            f"Memory binds: the heap ({HEAP_SHARE:.0%} of {i['node_mem_gb']:g} GB) holds {n} actor(s) of "
            f"{i['model_size_gb']:g} GB model + {i['batch_mem_gb']:g} GB batch, fewer than the {i['gpus']} GPU(s); "
            "a bigger node or a smaller batch would allow more."
        )
    else:
        text = (
            f"The object store binds: {OBJECT_STORE_SHARE:.0%} of {i['node_mem_gb']:g} GB holds {n} actor(s) with "
            f"{advice.blocks_in_flight} blocks of {advice.block_size_mb} MB in flight each; smaller blocks "
            "(a smaller batch) would allow more."
        )
    if n < 1:
        text += " Not even one actor fits by this rule: 1 is the floor, so expect spilling or running out of memory."
    return text


def predicted(advice: Advice, concurrency: int | None = None, images: int | None = None) -> dict[str, float]:
    """What a run with this advice should use; `concurrency`/`images` describe a smaller run (e.g. a clipped Verify).

    A run of fewer images than its blocks in flight can hold never has more
    than its whole data set in the object store, nor more than that in a batch.
    """
    i = advice.inputs
    actors = advice.concurrency if concurrency is None else concurrency
    store_bytes = actors * advice.blocks_in_flight * advice.block_size_mb * 2**20
    batch = advice.batch_size
    if images is not None:
        store_bytes = min(store_bytes, images * i["image_size"] ** 2 * 3)
        batch = min(batch, images)
    gpu_per_actor_gb = i["model_size_gb"] + batch * i["sample_mb"] / 1024
    return {
        "concurrency": actors,
        "peak_object_store_bytes": store_bytes,
        "heap_per_actor_gb": i["model_size_gb"] + i["batch_mem_gb"],
        "gpu_mem_per_actor_gb": gpu_per_actor_gb,
        "peak_gpu_mem_used_bytes": actors * gpu_per_actor_gb * 2**30,
    }


def detect_machine(model: str = "resnet18") -> dict[str, Any]:
    """This cluster's node with the most GPUs, its memory, this machine's GPU memory, and the model's size.

    GPUs come from Ray (what it can schedule), GPU memory from NVML on this
    machine (None without an NVIDIA GPU), node memory from psutil on a local
    Ray and from Ray's heap + object store resources on a cluster.
    """
    import psutil

    from engine.execution import connection
    from engine.observe import cluster, nvml

    alive = [n for n in _nodes_or_empty(cluster) if n.alive]
    node = max(alive, key=lambda n: (n.gpus, n.heap_bytes + n.object_store_bytes), default=None)
    if node is None or connection.connected_address() is None:
        node_mem_bytes = psutil.virtual_memory().total
    else:
        node_mem_bytes = node.heap_bytes + node.object_store_bytes
    readings = nvml.read_gpus()
    totals = [g.mem_total_bytes for g in readings if g.mem_total_bytes]
    gpus = int(node.gpus) if node else len(readings)
    return {
        "gpus": gpus,
        "gpu_name": readings[0].name if readings else None,
        "gpu_mem_gb": round(max(totals) / 2**30, 1) if totals else None,
        "node_mem_gb": round(node_mem_bytes / 2**30, 1),
        "model_size_gb": model_size_gb(model),
    }


def model_size_gb(model: str) -> float:
    """A model's weights in GB, from torchvision's checkpoint size: what an actor holds before any batch."""
    from engine.core.models import MODELS

    return round(MODELS[model].weights_mb / 1024, 3)


def _nodes_or_empty(cluster) -> list:
    """Ray's nodes, or none when Ray is not connected (the inputs then come from this machine alone)."""
    import ray

    return cluster.nodes() if ray.is_initialized() else []


def prefill(machine: dict[str, Any]) -> dict[str, float]:
    """The Advisor's starting inputs: this machine where it has a GPU, else the planned GPU machine."""
    values = {
        "gpus": machine["gpus"],
        "gpu_mem_gb": machine["gpu_mem_gb"],
        "node_mem_gb": machine["node_mem_gb"],
        "model_size_gb": machine["model_size_gb"],
        "sample_mb": SAMPLE_MB,
        "batch_mem_gb": BATCH_MEM_GB,
        "image_size": IMAGE_SIZE,
    }
    if not machine["gpus"]:
        values.update(PLANNED_GPU)
    if values["gpu_mem_gb"] is None:  # GPUs on other nodes: NVML here cannot read them
        values["gpu_mem_gb"] = PLANNED_GPU["gpu_mem_gb"]
    return values


def verify_config(advice: Advice, model: str, images: int, gpus: float, cpus: float) -> tuple[RunConfig, list[str]]:
    """A real run with the advised batch and block size, clipped to this cluster; and a line per clip, saying why."""
    notes = []
    if gpus >= 1:
        concurrency, num_gpus = min(advice.concurrency, int(gpus)), 1.0
        if concurrency < advice.concurrency:
            notes.append(f"concurrency {advice.concurrency} -> {concurrency}: this cluster has {int(gpus)} GPU(s)")
    else:
        concurrency, num_gpus = max(1, min(advice.concurrency, int(cpus))), 0.0
        notes.append("no GPU in this cluster: the run uses the CPU (num_gpus 0), so GPU memory is not measured")
        if concurrency < advice.concurrency:
            notes.append(f"concurrency {advice.concurrency} -> {concurrency}: one actor per CPU ({int(cpus)} CPUs)")
        if images > CPU_VERIFY_IMAGES:
            notes.append(f"images {images} -> {CPU_VERIFY_IMAGES}: a CPU cannot take GPU-sized batches quickly")
            images = CPU_VERIFY_IMAGES
    config = RunConfig(
        model=model,
        pipeline="actor",
        images=images,
        image_size=advice.inputs["image_size"],
        batch_size=advice.batch_size,
        concurrency=concurrency,
        block_size_mb=advice.block_size_mb,
        num_gpus=num_gpus,
        calls_per_actor=advice.inputs["calls_per_actor"],
    )
    return config, notes


def _floor(value: float) -> int:
    """floor() that forgives float error: 0.7 x 10 GB / 1 GB is 7 actors, not floor(6.999...)."""
    return math.floor(value + EPSILON)


def _check_whole(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AdviceError(f"{name} must be a whole number from {low} to {high} (got {value!r})")


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise AdviceError(f"{name} must be a number above 0 (got {value!r})")
