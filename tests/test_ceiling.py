"""The device ceiling: measured once through Ray with the engine's own forward pass, then cached."""

from engine.insight import ceiling


def test_measure_then_cached(ray_local, tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_CACHE", str(tmp_path))
    assert ceiling.cached(tiny) is None
    result = ceiling.measure(tiny)
    assert result["images_per_sec"] > 0 and result["batches"] >= 3
    assert result["device"].startswith("CPU")  # no GPU in CI: the ceiling is this CPU's
    assert ceiling.cached(tiny)["images_per_sec"] == result["images_per_sec"]
    assert ceiling.cached(tiny.replace(batch_size=16)) is None  # per batch size
