"""The image classifiers the playground offers, and how a worker builds one.

Weights are pretrained when torchvision's checkpoint is already in the local
torch cache (or a state-dict file is given), and random otherwise: nothing is
downloaded, and the caller is always told which it got.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)

MODEL_NAMES = ("resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0", "vit_b_16")


@dataclass(frozen=True)
class ModelInfo:
    """What a user needs to know about a model before running it."""

    name: str
    params_millions: float
    weights_mb: float
    gflops: float
    checkpoint_file: str


def _describe(name: str) -> ModelInfo:
    from torchvision.models import get_model_weights

    weights = get_model_weights(name).DEFAULT
    meta = weights.meta
    return ModelInfo(
        name=name,
        params_millions=round(meta["num_params"] / 1e6, 1),
        weights_mb=round(float(meta.get("_file_size", meta["num_params"] * 4 / 2**20)), 1),
        gflops=float(meta.get("_ops", 0.0)),
        checkpoint_file=os.path.basename(weights.url),
    )


class _Registry(dict):
    """Name -> ModelInfo, filled on first use so importing the engine stays cheap."""

    def __missing__(self, name: str) -> ModelInfo:
        if name not in MODEL_NAMES:
            raise KeyError(name)
        self[name] = info = _describe(name)
        return info

    def __contains__(self, name: object) -> bool:
        return name in MODEL_NAMES

    def __iter__(self):
        return iter(MODEL_NAMES)

    def __len__(self) -> int:
        return len(MODEL_NAMES)


MODELS: dict[str, ModelInfo] = _Registry()


def cached_checkpoint(name: str) -> str | None:
    """Path of torchvision's pretrained checkpoint in the local torch cache, if there."""
    import torch

    path = os.path.join(torch.hub.get_dir(), "checkpoints", MODELS[name].checkpoint_file)
    return path if os.path.isfile(path) else None


def weights_kind(name: str, weights_file: str | None = None) -> str:
    """'pretrained' when real weights are available locally, else 'random'."""
    return "pretrained" if (weights_file or cached_checkpoint(name)) else "random"


def class_names(name: str) -> list[str]:
    """ImageNet class names from torchvision's weight metadata."""
    from torchvision.models import get_model_weights

    return list(get_model_weights(name).DEFAULT.meta["categories"])


def build_model(name: str, weights_file: str | None = None):
    """Construct the model in eval mode, with local pretrained weights or random ones.

    Returns (model, weights) where weights is 'pretrained' or 'random'.
    """
    import torch
    from torchvision.models import get_model

    model = get_model(name, weights=None)
    path = weights_file or cached_checkpoint(name)
    if path:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    model.eval()
    return model, ("pretrained" if path else "random")
