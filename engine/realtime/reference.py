"""What the runs recorded on this machine say, for comparing the two modes on the same model.

The batch side is the newest finished actor-pipeline run of the model at the same image size
(the naive pipeline is slow on purpose: not what offline inference reaches); the real-time side
is the best finished real-time run that met a p99 latency target. Both come from the run store,
so any browser and any later session reads the same figures.
"""

from __future__ import annotations

from engine.realtime.search import meets

LOOK_BACK = 200  # the newest runs of the store that are searched


def batch_reference(store, model: str, image_size: int) -> dict | None:
    """{id, images_per_sec (steady where measured), first_result_s, precision, num_gpus} or None."""
    rows = _finished(store, "actor", model)
    configs = store.configs([r["id"] for r in rows]) if rows else {}
    for row in rows:  # newest first
        config = configs.get(row["id"], {})
        if config.get("image_size") != image_size:
            continue
        summary = (store.get(row["id"]) or {}).get("summary") or {}
        rate = summary.get("steady_images_per_sec") or row["images_per_sec"]
        if rate:
            return {"id": row["id"], "images_per_sec": rate, "first_result_s": summary.get("first_result_s"),
                    "precision": config.get("precision"), "num_gpus": config.get("num_gpus")}  # fmt: skip
    return None


def realtime_best(store, model: str, image_size: int, p99_ms: float) -> dict | None:
    """The summary of the real-time run of this model and size that served most while meeting `p99_ms`, or None."""
    rows = _finished(store, "realtime", model)
    configs = store.configs([r["id"] for r in rows]) if rows else {}
    best = None
    for row in rows:
        if configs.get(row["id"], {}).get("image_size") != image_size:
            continue
        summary = (store.get(row["id"]) or {}).get("summary") or {}
        if meets(summary, p99_ms) and (best is None or summary["throughput"] > best["throughput"]):
            best = {**summary, "id": row["id"]}
    return best


def minutes_for(images: int, images_per_sec: float) -> float:
    """How long `images` take at a steady rate, in minutes."""
    return images / images_per_sec / 60


def _finished(store, pipeline: str, model: str) -> list[dict]:
    rows = store.history(LOOK_BACK)
    return [r for r in rows if r["pipeline"] == pipeline and r["model"] == model and r["status"] == "finished"]
