"""One source of starting settings: the best layout for the resources Ray reports.

The app's controls, `python -m engine run/compare/sweep` and the Python API all start from
`pick_layout`, so a GPU host gets the tuned GPU layout wherever a run is launched, and flags
or sliders the user sets always win. On a GPU: several actors share each GPU (one batch copies
while the others compute), large batches in bf16, big blocks. On a CPU: one actor, small batches.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

GPU_ACTORS_PER_GPU = 4  # actors sharing one GPU, for GPUs with room for four models and their batches
GPU_ACTOR_CALLS = 3  # batches a GPU actor works on at once
ROOMY_GPU_GB = 40.0  # a GPU with at least this much memory takes GPU_ACTORS_PER_GPU actors of batch 256
SMALL_GPU_GB = 16.0  # below this, one actor per GPU and smaller batches
NAIVE_IMAGES = {"cpu": 64, "gpu": 512}  # the naive pipeline builds a model per batch: about 30 s of a demo
ACTOR_IMAGES = {"cpu": 512, "gpu": 20_000}


@dataclass(frozen=True)
class Machine:
    """What the cluster offers: its GPUs (name and memory where this machine can read them) and CPUs."""

    gpus: float = 0.0
    cpus: float = 1.0
    gpu_name: str | None = None
    gpu_mem_gb: float | None = None

    def describe(self) -> str:
        if not self.gpus:
            return f"{self.cpus:g} CPU(s), no GPU"
        name = self.gpu_name or "GPU"
        return f"{self.gpus:g} × {name}"


@dataclass(frozen=True)
class Layout:
    """Starting settings for one pipeline on one machine; `settings()` gives them as RunConfig fields."""

    pipeline: str
    machine: Machine
    batch_size: int
    concurrency: int
    num_gpus: float
    block_size_mb: int
    precision: str
    calls_per_actor: int | None
    images: int
    applied: tuple[str, ...] = field(default=())  # the fields a caller took from here (the rest it set itself)

    def settings(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "batch_size": self.batch_size,
            "concurrency": self.concurrency,
            "num_gpus": self.num_gpus,
            "block_size_mb": self.block_size_mb,
            "precision": self.precision,
            "calls_per_actor": self.calls_per_actor,
            "images": self.images,
        }

    def describe(self) -> str:
        """One line, e.g. "defaults for 1 × NVIDIA H100 80GB: 4 actors × 0.25 GPU, batch 256, bf16, 64 MB blocks"."""
        if self.pipeline == "naive":
            workers = f"{self.concurrency} tasks" + (f" × {self.num_gpus:g} GPU" if self.num_gpus else "")
        else:
            workers = f"{self.concurrency} actor(s)" + (f" × {self.num_gpus:g} GPU" if self.num_gpus else "")
        return (
            f"defaults for {self.machine.describe()}: {workers}, batch {self.batch_size}, {self.precision}, "
            f"{self.block_size_mb} MB blocks"
        )


def pick_layout(pipeline: str, machine: Machine, device: str = "auto") -> Layout:
    """The starting layout for `pipeline` on `machine`; `device="cpu"` keeps a GPU machine's run on its CPUs."""
    gpu = machine.gpus >= 1 and device != "cpu"
    kind = "gpu" if gpu else "cpu"
    if pipeline == "naive":
        return Layout("naive", machine, 4, 2, 0.5 if gpu else 0.0, 16, "bf16" if gpu else "fp32", None,
                      NAIVE_IMAGES[kind])  # fmt: skip
    if not gpu:
        return Layout("actor", machine, 32, 1, 0.0, 16, "fp32", None, ACTOR_IMAGES[kind])
    per_gpu, batch = _actors_and_batch(machine.gpu_mem_gb)
    actors = per_gpu * int(machine.gpus)
    return Layout("actor", machine, batch, actors, 1 / per_gpu, 64, "bf16", GPU_ACTOR_CALLS, ACTOR_IMAGES[kind])


def _actors_and_batch(gpu_mem_gb: float | None) -> tuple[int, int]:
    """Actors per GPU and batch size by GPU memory (unknown memory: a data-centre GPU is assumed)."""
    if gpu_mem_gb is None or gpu_mem_gb >= ROOMY_GPU_GB:
        return GPU_ACTORS_PER_GPU, 256
    if gpu_mem_gb >= SMALL_GPU_GB:
        return 2, 256
    return 1, 64


def fill(values: dict[str, Any], layout: Layout) -> tuple[dict[str, Any], Layout]:
    """`values` with every setting it leaves as None taken from `layout`; and the layout, naming what it gave."""
    given = dict(values)
    applied = []
    for name, value in layout.settings().items():
        if given.get(name) is None:
            given[name] = value
            applied.append(name)
    return given, dataclasses.replace(layout, applied=tuple(applied))


def detect_machine() -> Machine:
    """The connected Ray cluster's GPUs and CPUs, with GPU name and memory from NVML where this machine has them."""
    from engine.observe.cluster import nodes

    alive = [n for n in nodes() if n.alive]
    gpus, cpus = sum(n.gpus for n in alive), sum(n.cpus for n in alive)
    return local_machine(gpus, cpus) if gpus else Machine(0.0, cpus or 1.0)


def local_machine(gpus: float | None = None, cpus: float | None = None) -> Machine:
    """This machine as NVML and the OS see it (no Ray needed): what the page assumes before Ray is up."""
    import os

    from engine.observe import nvml

    readings = nvml.read_gpus()
    totals = [g.mem_total_bytes for g in readings if g.mem_total_bytes]
    return Machine(
        gpus=float(len(readings)) if gpus is None else gpus,
        cpus=float(os.cpu_count() or 1) if cpus is None else cpus,
        gpu_name=readings[0].name if readings else None,
        gpu_mem_gb=round(max(totals) / 2**30, 1) if totals else None,
    )
