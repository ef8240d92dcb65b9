"""The Advisor's two tables: the concurrency constraints, and a Verify run's predicted vs measured figures."""

from __future__ import annotations

import pandas as pd
from pandas.io.formats.style import Styler

CONSTRAINT_NAMES = {"gpus": "GPUs", "memory": "Memory (heap)", "object_store": "Object store"}
BINDING_STYLE = "background-color: rgba(255, 75, 75, 0.18); font-weight: bold"


def constraint_table(advice) -> Styler:
    """One row per constraint: how many actors it allows and why; the binding one highlighted."""
    frame = pd.DataFrame(
        [
            {
                "constraint": CONSTRAINT_NAMES[name],
                "max actors": c["value"],
                "binds": "◀ binds" if name == advice.binding else "",
                "formula": c["formula"],
            }
            for name, c in advice.constraints.items()
        ]
    )
    return frame.style.apply(lambda row: [BINDING_STYLE if row["binds"] else ""] * len(row), axis=1)


def comparison_table(predicted: dict, summary: dict, num_gpus: float) -> pd.DataFrame:
    """Predicted beside measured, as text; a figure the run could not give says why instead of showing 0."""
    store = summary.get("peak_object_store_bytes")
    gpu = summary.get("peak_gpu_mem_used_bytes")
    if num_gpus == 0:
        gpu_measured = "no GPU (ran on the CPU)"
    else:
        gpu_measured = f"{gpu / 2**30:,.2f} GB" if gpu is not None else "not available"
    steady = summary.get("steady_images_per_sec")
    rate = f"{summary.get('images_per_sec', 0):,.1f} img/s" + (f" (steady {steady:,.1f})" if steady else "")
    actors, per_actor = predicted["concurrency"], predicted["gpu_mem_per_actor_gb"]
    rows = [
        (
            "Peak object store",
            f"{predicted['peak_object_store_bytes'] / 2**20:,.1f} MB",
            f"{store / 2**20:,.1f} MB" if store is not None else "not available",
        ),
        (
            "Peak GPU memory",
            f"{actors} x {per_actor:,.2f} GB = {predicted['peak_gpu_mem_used_bytes'] / 2**30:,.2f} GB",
            gpu_measured,
        ),
        ("Heap per actor", f"{predicted['heap_per_actor_gb']:g} GB", "not measured (Ray reports no per-actor heap)"),
        ("Throughput", "not predicted", rate),
    ]
    return pd.DataFrame(rows, columns=["", "predicted", "measured"])
