"""What a real-time run is: a request rate into one model behind a dynamic batcher, for a while.

`validate()` is the one place that says what is allowed; a bad value is refused with one
line naming the field (`ConfigError`), before anything starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from engine.core.config import PRECISIONS, ConfigError
from engine.core.errors import redact

LIMITS = {
    "rate": (0.1, 20_000.0),  # requests/s offered
    "max_batch": (1, 1024),
    "max_wait_ms": (0.0, 1000.0),
    "seconds": (1.0, 600.0),
    "image_size": (16, 1024),
    "num_gpus": (0, 8),
}
MAX_REQUESTS = 1_000_000  # rate x seconds: every request's timings are kept in the driver


@dataclass(frozen=True)
class RealtimeConfig:
    """Requests at `rate` per second for `seconds`, served in batches of up to `max_batch`.

    A batch starts once `max_batch` requests wait or its oldest request has waited `max_wait_ms`.
    `num_gpus`: one server (a Ray actor) per GPU; 0 runs one server on the CPU.
    """

    model: str = "resnet18"
    rate: float = 20.0
    max_batch: int = 8
    max_wait_ms: float = 20.0
    seconds: float = 10.0
    image_size: int = 224
    num_gpus: int = 0
    precision: str = "fp32"
    address: str | None = None

    @property
    def pipeline(self) -> str:
        """What the run store and the history call this kind of run."""
        return "realtime"

    @property
    def servers(self) -> int:
        return max(1, self.num_gpus)

    def validate(self) -> RealtimeConfig:
        """Return self if every field is allowed; raise `ConfigError` otherwise."""
        from engine.core.models import MODELS

        if self.model not in MODELS:
            _fail("model", f"must be one of {', '.join(MODELS)}", self.model)
        if self.precision not in PRECISIONS:
            _fail("precision", f"must be one of {', '.join(PRECISIONS)}", self.precision)
        for name in ("rate", "max_wait_ms", "seconds"):
            _check(name, getattr(self, name), whole=False)
        for name in ("max_batch", "image_size", "num_gpus"):
            _check(name, getattr(self, name), whole=True)
        if self.rate * self.seconds > MAX_REQUESTS:
            _fail("rate", f"x seconds must be at most {MAX_REQUESTS:,} requests", self.rate * self.seconds)
        if self.address is not None and not self.address.strip():
            _fail("address", "must be HOST:PORT, ray://HOST:PORT or auto", self.address)
        return self

    def replace(self, **changes: Any) -> RealtimeConfig:
        """A copy with some fields changed (not validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field, as stored and shown (credentials in the address masked), and the pipeline's name."""
        values = dataclasses.asdict(self)
        values["address"] = self.address and redact(self.address)
        return {"pipeline": self.pipeline, **values}


def _fail(field: str, rule: str, value: Any) -> None:
    raise ConfigError(f"{field} {rule} (got {value!r})")


def _check(name: str, value: Any, whole: bool) -> None:
    low, high = LIMITS[name]
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value != value:
        _fail(name, f"must be a {'whole ' if whole else ''}number from {low:g} to {high:g}", value)
    if not low <= value <= high:
        _fail(name, f"must be from {low:g} to {high:g}", value)
