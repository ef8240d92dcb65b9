"""Batch-inference engine: real Ray Data runs in the background, with live metrics.

Imports nothing from Streamlit. `python -m engine` is its command line.
"""

from engine.config import ConfigError, RunConfig
from engine.run import Run, runner, start

__all__ = ["ConfigError", "Run", "RunConfig", "runner", "start"]
