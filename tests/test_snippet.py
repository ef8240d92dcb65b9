"""The 'equivalent code' the app shows is real Ray Data code that runs as printed."""

import contextlib
import io

import pytest

from engine.insight.snippet import code_for


@pytest.mark.parametrize(
    "pipeline, stages, calls",
    [("naive", "single", 1), ("actor", "single", 1), ("actor", "single", 2), ("naive", "cpu_preprocess", 1)]
    + [("actor", "ensemble", 1)],
)
def test_snippet_runs_and_predicts_every_image(ray_local, tiny, pipeline, stages, calls):
    config = tiny.replace(
        pipeline=pipeline,
        images=16,
        batch_size=4 if pipeline == "naive" else 8,
        stages=stages,
        second_model="resnet18",
        calls_per_actor=calls,
    )
    code = code_for(config)
    assert ("enable_true_multi_threading=True" in code) == (calls > 1)
    assert f"batch_size={config.batch_size}" in code
    assert ("ActorPoolStrategy" if pipeline == "actor" else "TaskPoolStrategy") in code.split("map_batches(")[-1]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<snippet>", "exec"), {"__name__": "snippet"})
    counts = [int(line.split()[0]) for line in out.getvalue().splitlines() if line.endswith("predictions")]
    assert sum(counts) == config.images


def test_snippet_carries_block_size_and_object_store_limit(tiny):
    code = code_for(tiny.replace(block_size_mb=7, object_store_limit_mb=512, output="/tmp/out"))
    assert "7 * 1024 * 1024" in code and "512 * 1024 * 1024" in code and "write_parquet('/tmp/out')" in code
    assert "RAY_free_objects_batch_size=1" in code  # what keeps the store under the limit


@pytest.mark.parametrize("decode", ["cpu", "gpu"])  # "gpu": decoded inside the actors (here on their CPU)
def test_snippet_reads_files_and_skips_what_is_not_an_image(ray_local, tiny, tmp_path, decode):
    from PIL import Image

    for i in range(5):
        Image.new("RGB", (40, 40), (i * 40, 0, 0)).save(tmp_path / f"{i}.jpg")
    (tmp_path / "readme.txt").write_text("not an image")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = code_for(tiny.replace(data=str(tmp_path), decode=decode))
        assert ("ds.map_batches(decode," in code) == (decode == "cpu")  # a CPU decode stage, or none
        exec(compile(code, "<snippet>", "exec"), {"__name__": "snippet"})
    counts = [int(line.split()[0]) for line in out.getvalue().splitlines() if line.endswith("predictions")]
    assert sum(counts) == 5  # readme.txt was skipped (the worker prints its name to its own log)
