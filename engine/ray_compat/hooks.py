"""Ray Data's execution callback, at module level: Ray ships the DataContext, callback classes included,
to its workers, which import this class by name instead of unpickling its state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.data._internal.execution.execution_callback import ExecutionCallback

listeners: dict[str, Callable[[Any], None]] = {}


class Hooks(ExecutionCallback):
    def before_execution_starts(self, executor) -> None:
        if "start" in listeners:
            listeners["start"](executor)

    def after_execution_succeeds(self, executor) -> None:
        if "end" in listeners:
            listeners["end"](executor)

    def after_execution_fails(self, executor, error: Exception) -> None:
        if "end" in listeners:
            listeners["end"](executor)
