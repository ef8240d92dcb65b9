"""One validated description of a batch-inference run.

Every entry point (CLI, pages, benchmark) builds a `RunConfig`; `validate()` is
the single place that decides what is allowed, so a bad value is refused with
one line naming the field before anything starts.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from engine.core.errors import redact

PIPELINES = ("naive", "actor")
STAGES = ("single", "cpu_preprocess", "ensemble")  # inference only; + a CPU decode/resize stage; + a second model
BAD_FILE_POLICIES = ("skip", "fail")
PRECISIONS = ("fp32", "bf16", "fp16")
BUILTIN_DATA = ("synthetic", "jpeg")
DECODES = ("cpu", "gpu", "auto")  # where image files are decoded: see engine.core.decode.decodes_in_actors
URI_SCHEMES = ("s3://", "gs://", "gcs://", "abfs://", "az://", "hdfs://", "http://", "https://", "local://")

LIMITS = {
    "images": (1, 10_000_000),
    "image_size": (16, 1024),
    "batch_size": (1, 8192),
    "concurrency": (1, 256),
    "block_size_mb": (1, 4096),
    "num_gpus": (0.0, 8.0),
    "object_store_limit_mb": (64, 10_000_000),
    "calls_per_actor": (1, 8),
    "preprocess_cpus": (0.05, 16.0),
    "preprocess_concurrency": (1, 256),
}


class ConfigError(ValueError):
    """A config value outside what the engine accepts; the message is one line."""


@dataclass(frozen=True)
class RunConfig:
    """What to run. Defaults are the actor pipeline's tuned settings for a CPU laptop."""

    model: str = "resnet18"
    pipeline: str = "actor"
    images: int = 256
    image_size: int = 224
    data: str = "synthetic"
    batch_size: int = 32
    concurrency: int = 1
    block_size_mb: int = 16
    num_gpus: float = 0.0
    precision: str = "fp32"
    object_store_limit_mb: int | None = None
    address: str | None = None
    output: str | None = None
    weights_file: str | None = None
    calls_per_actor: int | None = None  # batches an actor works on at once; None = 3 on a GPU, else 1
    stages: str = "single"
    preprocess_cpus: float = 1.0  # CPUs per task of the cpu_preprocess stage
    preprocess_concurrency: int = 2  # tasks of the cpu_preprocess stage at once
    second_model: str | None = None  # the ensemble's second classifier
    materialize: bool = False  # run every stage to the end before the next (to compare with streaming)
    on_bad_file: str = "skip"  # a corrupt or non-image file: skip it (counted and named) or fail the run
    decode: str = "auto"  # image files: decoded in CPU read tasks, in the model's actors on their GPU, or auto
    defaults: str | None = None  # the machine defaults the unset settings came from (engine.core.defaults)

    def validate(self) -> RunConfig:
        """Return self if every field is allowed; raise `ConfigError` otherwise."""
        from engine.core.models import MODELS

        if self.model not in MODELS:
            _fail("model", f"must be one of {', '.join(MODELS)}", self.model)
        if self.pipeline not in PIPELINES:
            _fail("pipeline", f"must be one of {', '.join(PIPELINES)}", self.pipeline)
        if self.stages not in STAGES:
            _fail("stages", f"must be one of {', '.join(STAGES)}", self.stages)
        if self.on_bad_file not in BAD_FILE_POLICIES:
            _fail("on_bad_file", f"must be one of {', '.join(BAD_FILE_POLICIES)}", self.on_bad_file)
        _check_decode(self)
        if self.stages == "ensemble":
            if self.pipeline != "actor":
                _fail("stages", "ensemble needs the actor pipeline", self.pipeline)
            if self.second_model not in MODELS:
                _fail("second_model", f"must be one of {', '.join(MODELS)} for an ensemble", self.second_model)
        _check_number("preprocess_cpus", self.preprocess_cpus)
        _check_int("preprocess_concurrency", self.preprocess_concurrency)
        if self.precision not in PRECISIONS:
            _fail("precision", f"must be one of {', '.join(PRECISIONS)}", self.precision)
        for name in ("images", "image_size", "batch_size", "concurrency", "block_size_mb"):
            _check_int(name, getattr(self, name))
        _check_number("num_gpus", self.num_gpus)
        if self.num_gpus > 1 and self.num_gpus != int(self.num_gpus):
            _fail("num_gpus", "above 1 must be a whole number (fractions only below 1)", self.num_gpus)
        for name in ("object_store_limit_mb", "calls_per_actor"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name))
        if self.data not in BUILTIN_DATA:
            _check_data_path(self.data)
        if self.weights_file is not None and not os.path.isfile(self.weights_file):
            _fail("weights_file", "must be an existing state-dict file", self.weights_file)
        if self.output is not None:
            _check_output(self.output)
        if self.address is not None and not self.address.strip():
            _fail("address", "must be HOST:PORT, ray://HOST:PORT or auto", self.address)
        return self

    @property
    def actor_calls(self) -> int:
        """Concurrent batches per actor: on a GPU, three, so one batch's copy overlaps the others' compute."""
        from engine.core.defaults import GPU_ACTOR_CALLS

        if self.calls_per_actor is not None:
            return self.calls_per_actor
        return GPU_ACTOR_CALLS if self.num_gpus > 0 else 1

    @property
    def model_stages(self) -> int:
        """Actor pools that hold a model: two for an ensemble, else one."""
        return 2 if self.stages == "ensemble" else 1

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed (not validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field, as stored and shown: credentials in the address are masked."""
        values = dataclasses.asdict(self)
        values["address"] = self.address and redact(self.address)
        values["data"] = redact(self.data)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**values)


def _fail(field: str, rule: str, value: Any) -> None:
    raise ConfigError(f"{field} {rule} (got {value!r})")


def _check_int(name: str, value: Any) -> None:
    low, high = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(name, f"must be a whole number from {low} to {high}", value)
    if not low <= value <= high:
        _fail(name, f"must be from {low} to {high}", value)


def _check_number(name: str, value: Any) -> None:
    low, high = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        _fail(name, f"must be a number from {low:g} to {high:g}", value)
    if not low <= value <= high:
        _fail(name, f"must be from {low:g} to {high:g}", value)


def _check_decode(config: RunConfig) -> None:
    """GPU decode happens in the model's actors, so it needs them, and it replaces the CPU pre-processing stage."""
    if config.decode not in DECODES:
        _fail("decode", f"must be one of {', '.join(DECODES)}", config.decode)
    if config.decode == "gpu" and config.pipeline != "actor":
        _fail("decode", "gpu needs the actor pipeline (the naive one decodes in its read tasks)", config.decode)
    if config.decode == "gpu" and config.stages == "cpu_preprocess":
        _fail("decode", "gpu leaves the cpu_preprocess stage nothing to do: use stages single or decode cpu", "gpu")


def _check_data_path(data: str) -> None:
    if not data or not data.strip():
        _fail("data", "must be 'synthetic', 'jpeg', or a folder or URI of images", data)
    if data.startswith(URI_SCHEMES):
        return
    if "\0" in data:
        _fail("data", "must not contain a NUL character", data)
    path = os.path.realpath(os.path.expanduser(data))  # what would be read: from the app's folder, links followed
    if not os.path.exists(path):
        _fail("data", f"must be 'synthetic', 'jpeg', or an existing folder or URI of images: {path}", data)
    if not os.path.isdir(path):
        _fail("data", f"must be a folder of images, not a file: {path}", data)


def _check_output(output: str) -> None:
    if not output.strip():
        _fail("output", "must be a folder path", output)
    if output.startswith(URI_SCHEMES):
        return
    path = os.path.abspath(os.path.expanduser(output))
    if os.path.exists(path) and not os.path.isdir(path):
        _fail("output", "must be a folder, not a file", output)
    parent = path if os.path.isdir(path) else os.path.dirname(path)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK):
        _fail("output", "must be a writable folder", output)
