"""Batch-inference engine: real Ray Data runs in the background, with live metrics.

Imports nothing from Streamlit; `python -m engine` is its command line. The layout:

- `core`: what a run is (config, models, data, the two UDFs, the Ray Data pipeline);
- `execution`: running it (the queue, one run's steps, the connection to Ray, warm workers, Stop);
- `observe`: measuring it (samplers, NVML, what the cluster has);
- `insight`: explaining it (summary, plans and fusion, sweeps, the advisor, the ceiling, code to copy);
- `store`: every run, kept in SQLite;
- `ray_compat`: the only door to Ray's internals.
"""

from engine.ray_compat.env import apply_driver_settings

apply_driver_settings()  # before anything imports Ray

from engine.core.config import ConfigError, RunConfig  # noqa: E402

__all__ = ["ConfigError", "Run", "RunConfig", "runner", "start"]


def __getattr__(name: str):
    """`Run`, `runner` and `start` load the execution layer (and Ray) only when asked for."""
    if name in ("Run", "runner", "start"):
        from engine.execution import run, runner

        return {"Run": run.Run, "runner": runner.runner, "start": runner.start}[name]
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
