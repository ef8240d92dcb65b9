"""The image classifiers the playground offers, and how a worker builds one.

Weights are pretrained when torchvision's checkpoint is already in the local
torch cache (or a state-dict file is given), and random otherwise: nothing is
downloaded, and the caller is always told which it got.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from engine.core.lean_import import torchvision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What a user needs to know about a model before running it."""

    name: str
    params_millions: float
    weights_mb: float
    gflops: float
    checkpoint_file: str


# torchvision's DEFAULT weights' metadata (a test checks it against torchvision): kept here so that
# drawing the controls never waits for torch to import.
MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo("resnet18", 11.7, 44.7, 1.814, "resnet18-f37072fd.pth"),
        ModelInfo("resnet50", 25.6, 97.8, 4.089, "resnet50-11ad3fa6.pth"),
        ModelInfo("mobilenet_v3_large", 5.5, 21.1, 0.217, "mobilenet_v3_large-5c1a4163.pth"),
        ModelInfo("efficientnet_b0", 5.3, 20.5, 0.386, "efficientnet_b0_rwightman-7f5810bc.pth"),
        ModelInfo("vit_b_16", 86.6, 330.3, 17.564, "vit_b_16-c867db91.pth"),
    )
}
MODEL_NAMES = tuple(MODELS)


def describe(name: str) -> ModelInfo:
    """A model's metadata read from torchvision itself (what MODELS holds)."""
    weights = torchvision().models.get_model_weights(name).DEFAULT
    meta = weights.meta
    return ModelInfo(
        name=name,
        params_millions=round(meta["num_params"] / 1e6, 1),
        weights_mb=round(float(meta.get("_file_size", meta["num_params"] * 4 / 2**20)), 1),
        gflops=float(meta.get("_ops", 0.0)),
        checkpoint_file=os.path.basename(weights.url),
    )


def hub_dir() -> str:
    """torch.hub's folder, found as torch finds it ($TORCH_HOME/hub, else the XDG cache), without importing torch."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "torch"
    )
    return os.path.join(os.path.expanduser(home), "hub")


def cached_checkpoint(name: str) -> str | None:
    """Path of torchvision's pretrained checkpoint in the local torch cache, if there."""
    path = os.path.join(hub_dir(), "checkpoints", MODELS[name].checkpoint_file)
    return path if os.path.isfile(path) else None


def weights_kind(name: str, weights_file: str | None = None) -> str:
    """'pretrained' when real weights are available locally, else 'random'."""
    return "pretrained" if (weights_file or cached_checkpoint(name)) else "random"


def class_names(name: str) -> list[str]:
    """ImageNet class names from torchvision's weight metadata."""
    return list(torchvision().models.get_model_weights(name).DEFAULT.meta["categories"])


def build_model(name: str, weights_file: str | None = None):
    """Construct the model in eval mode, with local pretrained weights or random ones.

    Returns (model, weights) where weights is 'pretrained' or 'random'.
    """
    import torch

    model = torchvision().models.get_model(name, weights=None)
    path = weights_file or cached_checkpoint(name)
    if path:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    model.eval()
    return model, ("pretrained" if path else "random")
