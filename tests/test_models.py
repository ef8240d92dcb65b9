"""The model registry, and pretrained-vs-random weights decided from local files only."""

import torch

from engine.core.models import MODELS, build_model, class_names, weights_kind

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
    from engine.core.inference import sleep_while_waiting_for_gpu

    monkeypatch.setenv("PLAYGROUND_CUDA_SYNC", "spin")
    assert sleep_while_waiting_for_gpu() is None  # nothing set: CUDA's own spin-wait stays


def _second_enters_while_the_first_holds_the_turn(wait: float) -> bool:
    """One thread takes the GPU's load turn and keeps it; does a second get its turn within `wait` seconds?"""
    import threading

    from engine.core.inference import gpu_load_turn

    holding, release, second_in = threading.Event(), threading.Event(), threading.Event()

    def first():
        with gpu_load_turn():
            holding.set()
            release.wait(30)

    def second():
        with gpu_load_turn():
            second_in.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert holding.wait(30)
    threads[1].start()
    entered = second_in.wait(wait)
    release.set()
    for t in threads:
        t.join(30)
    assert second_in.is_set()  # the second always loads in the end
    return entered


def test_actors_on_one_gpu_load_in_turn(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert not _second_enters_while_the_first_holds_the_turn(wait=1.0)
    assert (tmp_path / "playground-gpu-load-0.lock").exists()


def test_a_load_turn_can_be_skipped_or_outwaited(tmp_path, monkeypatch):
    import tempfile

    from engine.core import inference

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("PLAYGROUND_GPU_LOADS", "together")
    assert _second_enters_while_the_first_holds_the_turn(wait=10)
    monkeypatch.delenv("PLAYGROUND_GPU_LOADS")
    monkeypatch.setattr(inference, "GPU_LOAD_WAIT_S", 0.1)  # a load that hangs holds the next back this long
    assert _second_enters_while_the_first_holds_the_turn(wait=10)


def test_the_models_metadata_is_torchvisions_own_and_the_hub_folder_is_torchs():
    from engine.core.models import describe, hub_dir

    assert [describe(name) for name in MODELS] == list(MODELS.values())
    assert hub_dir() == torch.hub.get_dir()
