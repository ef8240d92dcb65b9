"""The final account of a run: figures, start-up phases, Ray Data's stats and plan."""

from __future__ import annotations

import logging
from typing import Any

from engine import ray_compat

log = logging.getLogger(__name__)

PHASES = ("connect_ray", "start_workers", "load_model", "first_batch_in", "first_result")


def startup_phases(launched: float, connected: float | None, workers: dict) -> dict[str, float] | None:
    """Launch -> Ray connected -> a worker ready -> model loaded -> first batch in -> first result.

    Each phase is the time since the previous mark; together they add up to
    `first_result_s`. None until the first result exists.
    """
    first_load = min((load["end"] for load in workers.get("loads") or []), default=None)
    marks = [
        connected,
        workers.get("first_worker"),
        first_load,
        workers.get("first_batch_in"),
        workers.get("first_result"),
    ]
    if any(m is None for m in marks):
        return None
    phases, previous = {}, launched
    for name, mark in zip(PHASES, marks, strict=True):
        mark = max(mark, previous)
        phases[name] = round(mark - previous, 3)
        previous = mark
    return phases


def steady_rate(points: list[dict], first_result_s: float | None) -> float | None:
    """Images/sec from the first result to the end: the rate once start-up is paid.

    None where that window is too short to say: fewer than two samples, or no rows done after the first
    sample of it (a short run whose rows all arrived at once has no steady rate, not a rate of zero).
    """
    if first_result_s is None or not points:
        return None
    after = [p for p in points if p["t"] >= first_result_s]
    if len(after) < 2 or after[-1]["t"] <= after[0]["t"] or after[-1]["rows"] <= after[0]["rows"]:
        return None
    return (after[-1]["rows"] - after[0]["rows"]) / (after[-1]["t"] - after[0]["t"])


def _peak(points: list[dict], key: str):
    values = [p[key] for p in points if p.get(key) is not None]
    return max(values) if values else None


def _plan_and_stats(dataset, executed=None) -> tuple[str | None, str | None]:
    """The lazy dataset's plan; the stats of whichever dataset executed (a materialized copy holds its own)."""
    if dataset is None:
        return None, None
    plan = stats = None
    try:
        plan = ray_compat.explain_text(dataset)
    except Exception as exc:
        log.debug("no plan: %s", exc)
    try:
        stats = (dataset if executed is None else executed).stats()
    except Exception as exc:
        log.debug("no stats: %s", exc)
    return plan, stats


def summarize(run, status: str, error: str | None, ended: float, workers: dict, weights: str) -> dict[str, Any]:
    points = run.timeseries()
    launched = run.launched_at
    seconds = ended - launched
    rows = workers.get("rows", points[-1]["rows"] if points else 0)
    first = workers.get("first_result")
    first_result_s = round(first - launched, 3) if first else None
    plan, stats = _plan_and_stats(run.dataset, run.materialized)
    loads = [
        {
            "worker": load["worker"],
            "start_s": round(load["start"] - launched, 3),
            "end_s": round(load["end"] - launched, 3),
        }
        for load in workers.get("loads") or []
    ]
    config = run.config
    return {
        "id": run.id,
        "status": status,
        "error": error,
        "error_detail": getattr(run, "error_detail", None),
        "started_at": launched,
        "pipeline": config.pipeline,
        "model": config.model,
        "weights": weights,
        "data": config.data,
        "images": getattr(run, "total", config.images),  # what it went through
        "requested": config.images,
        "rows": rows,
        "seconds": round(seconds, 3),
        "images_per_sec": rows / seconds if seconds > 0 else 0.0,
        "steady_images_per_sec": steady_rate(points, first_result_s),
        "first_result_s": first_result_s,
        "startup": startup_phases(launched, run.marks.get("connected"), workers),
        "model_loads": workers.get("model_loads", 0),
        "model_load_seconds": round(sum(x["end_s"] - x["start_s"] for x in loads), 3),
        "loads": loads,
        "workers": workers.get("workers", 0),
        "skipped_files": workers.get("skipped_files", 0),
        "skipped_names": workers.get("skipped_names") or [],
        **decode_figures(workers),
        "nodes": _nodes(workers.get("nodes") or {}, points),
        "peak_gpu_util_pct": _peak(points, "gpu_util_pct"),
        "peak_gpu_mem_used_bytes": _peak(points, "gpu_mem_used_bytes"),
        "peak_object_store_bytes": _peak(points, "object_store_used_bytes"),
        "object_store_capacity_bytes": _peak(points, "object_store_capacity_bytes"),
        "plan": plan,
        "stats": stats,
        "predictions": [{k: _plain(v) for k, v in p.items()} for p in run.predictions],
        "config": config.to_dict(),
        "timeseries": points,
    }


def decode_figures(workers: dict) -> dict[str, Any]:
    """Which decoder(s) read the files, how many images on the GPU and on the CPU, and the time it took.

    `decode_share` is the part of the model's actors' call time spent decoding: None where they
    decoded nothing (synthetic images, or files decoded in CPU read tasks).
    """
    call_s = workers.get("actor_call_seconds") or 0.0
    return {
        "decoder": ", ".join(workers.get("decoders") or []) or None,
        "decoded_on_gpu": workers.get("decoded_on_gpu", 0),
        "decoded_on_cpu": workers.get("decoded_on_cpu", 0),
        "decode_seconds": round(workers.get("decode_seconds", 0.0), 3),
        "decode_share": round(workers.get("actor_decode_seconds", 0.0) / call_s, 4) if call_s > 0 else None,
    }


def _nodes(reported: dict[str, dict], points: list[dict]) -> list[dict]:
    """One entry per Ray node that did work in this run: address, work done, peak store, GPU use."""
    try:
        from engine.observe.cluster import node_label, nodes

        addresses = {n.node_id: n.address for n in nodes()}
        labels = {n.node_id: node_label(n.address, n.node_id) for n in nodes()}
    except Exception:  # the cluster went away: keep the figures, lose the addresses
        addresses, labels = {}, {}
    entries = []
    for node, figures in sorted(reported.items()):
        address, label = addresses.get(node), labels.get(node)
        store = [(p.get("object_store_by_node") or {}).get(label) for p in points]
        util = [g["util_pct"] for p in points for g in p.get("gpus") or []
                if g.get("node") == label and g["util_pct"] is not None]  # fmt: skip
        entries.append({
            "node_id": node, "address": address, **figures,
            "object_store_peak_bytes": max((v for v in store if v is not None), default=None),
            "gpu_util_mean": sum(util) / len(util) if util else None,
        })  # fmt: skip
    return entries


def _plain(value):
    """numpy scalars -> Python, so the summary is JSON-serialisable."""
    return value.item() if hasattr(value, "item") else value
