"""Multi-stage pipelines and file data: a CPU pre-processing stage, a two-model ensemble, bad files."""

import numpy as np
import pytest
from conftest import finish
from PIL import Image


@pytest.fixture
def messy_folder(tmp_path):
    """Ten small JPEGs, a text file and a truncated JPEG."""
    for i in range(10):
        Image.fromarray(np.full((40, 40, 3), i * 20, np.uint8)).save(tmp_path / f"ok{i}.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff truncated")
    return tmp_path


def test_cpu_preprocess_is_its_own_stage(ray_local, tiny):
    summary = finish(ray_local.submit(tiny.replace(stages="cpu_preprocess", preprocess_concurrency=2)))
    assert summary["status"] == "finished" and summary["rows"] == tiny.images
    physical = summary["plan"].split("Physical Plan (Optimized)")[1]
    assert "TaskPoolMapOperator[MapBatches(resize_images)]" in physical  # not fused into the read or the model


def test_ensemble_loads_two_models_and_counts_each_image_once(ray_local, tiny):
    summary = finish(ray_local.submit(tiny.replace(stages="ensemble", second_model="mobilenet_v3_large")))
    assert summary["status"] == "finished", summary["error"]
    assert summary["rows"] == tiny.images and summary["model_loads"] == 2
    assert summary["plan"].count("MapBatches(Predictor)") >= 2
    assert all(0 <= p["label_index"] < 1000 for p in summary["predictions"])


def test_bad_files_are_skipped_counted_and_named(ray_local, tiny, messy_folder):
    summary = finish(ray_local.submit(tiny.replace(data=str(messy_folder), images=100)))
    assert summary["status"] == "finished" and summary["rows"] == 10
    assert summary["images"] == 12 and summary["requested"] == 100  # the folder's files, counted before the run
    assert summary["skipped_files"] == 2
    assert sorted(n.rsplit("/", 1)[-1] for n in summary["skipped_names"]) == ["broken.jpg", "notes.txt"]


def test_bad_file_can_fail_the_run_naming_the_file(ray_local, tiny, messy_folder):
    summary = finish(ray_local.submit(tiny.replace(data=str(messy_folder), images=100, on_bad_file="fail")))
    assert summary["status"] == "failed"
    assert summary["error"].startswith("ValueError: not a readable image: ") and summary["error"].count("\n") == 0
    assert summary["error"].split(": ")[2].split(" ")[0].endswith(("broken.jpg", "notes.txt"))


def test_ensemble_needs_a_known_second_model(tiny):
    from engine import ConfigError

    with pytest.raises(ConfigError, match="second_model"):
        tiny.replace(stages="ensemble").validate()
    with pytest.raises(ConfigError, match="ensemble needs the actor pipeline"):
        tiny.replace(stages="ensemble", second_model="resnet18", pipeline="naive").validate()


def test_a_folder_is_counted_by_a_listing_as_ray_lists_it(tiny, messy_folder):
    from engine.core.data import count_inputs

    (messy_folder / ".hidden.png").write_bytes(b"x")  # Ray Data leaves out "." and "_" entries, and so does the count
    (messy_folder / "_meta").write_bytes(b"x")
    assert count_inputs(tiny.replace(data=str(messy_folder), images=100)) == 12
    assert count_inputs(tiny.replace(data=str(messy_folder), images=5)) == 5
    assert count_inputs(tiny.replace(data="synthetic", images=100)) == 100
