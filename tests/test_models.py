"""The model registry, and pretrained-vs-random weights decided from local files only."""

import torch

from engine.models import MODELS, build_model, class_names, weights_kind

REQUIRED = {"resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0", "vit_b_16"}


def test_registry_lists_required_models_with_sizes():
    assert REQUIRED <= set(MODELS)
    for name in REQUIRED:
        info = MODELS[name]
        assert info.params_millions > 1
        assert info.weights_mb > 1
    assert MODELS["resnet50"].params_millions == 25.6


def test_random_weights_when_nothing_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert weights_kind("resnet18") == "random"
    model, weights = build_model("resnet18")
    assert weights == "random" and not model.training


def test_pretrained_from_a_state_dict_file(tmp_path):
    reference, _ = build_model("resnet18")
    path = tmp_path / "weights.pth"
    torch.save(reference.state_dict(), path)
    model, weights = build_model("resnet18", str(path))
    assert weights == "pretrained"
    assert torch.equal(model.fc.weight, reference.fc.weight)


def test_pretrained_from_the_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference, _ = build_model("resnet18")
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / MODELS["resnet18"].checkpoint_file)
    assert weights_kind("resnet18") == "pretrained"
    model, weights = build_model("resnet18")
    assert weights == "pretrained" and torch.equal(model.fc.bias, reference.fc.bias)


def test_class_names_come_from_weight_metadata():
    names = class_names("resnet50")
    assert len(names) == 1000 and names[0] == "tench"


def test_cuda_wait_mode_can_be_left_at_cudas_default(monkeypatch):
    from engine.inference import sleep_while_waiting_for_gpu

    monkeypatch.setenv("PLAYGROUND_CUDA_SYNC", "spin")
    assert sleep_while_waiting_for_gpu() is None  # nothing set: CUDA's own spin-wait stays
