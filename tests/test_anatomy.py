"""The Anatomy page: plans and fusion reasons read from Ray, blocks, the store budget, stage times, materialize."""

import math
import os
import time

import pytest
from streamlit.testing.v1 import AppTest

from engine.core.data import rows_per_block
from engine.core.defaults import Machine, pick_layout
from engine.insight.anatomy import block_layout, explain, latest_finished, operator_times, store_budget, store_use
from tests.conftest import finish
from tests.test_pages import APP, run_until

PAGE = os.path.join(os.path.dirname(APP), "pages", "anatomy.py")
SHAPES = {
    "actor": {},
    "naive": {"pipeline": "naive", "batch_size": 4, "concurrency": 2},
    "cpu_preprocess": {"stages": "cpu_preprocess", "preprocess_concurrency": 2},
    "ensemble": {"stages": "ensemble", "second_model": "mobilenet_v3_large"},
}


def test_plans_name_the_operators_without_running_anything(ray_local, tiny):
    before = len(ray_local.runs)
    view = explain(tiny)
    assert "MapBatches[MapBatches(Predictor)]" in view.logical and "Read[ReadRange]" in view.logical
    assert "ActorPoolMapOperator[MapBatches(_make_images)->MapBatches(Predictor)]" in view.optimized_physical
    assert "TaskPoolMapOperator[MapBatches(_make_images)]" in view.physical  # before fusion, its own operator
    assert view.operators == ["ReadRange", "MapBatches(_make_images)->MapBatches(Predictor)"]
    assert len(ray_local.runs) == before


@pytest.mark.parametrize("stages", ["single", "cpu_preprocess"])
def test_the_gpu_layout_makes_its_images_inside_the_read(ray_local, tiny, stages):
    """Planned without a GPU: the image map must stay fused into the read when the model stage asks for a GPU.

    When it did not (094ab66, reverted), one H200 ran the tuned pipeline at half speed.
    """
    gpu_layout = pick_layout("actor", Machine(gpus=1)).settings()
    view = explain(tiny.replace(stages=stages, **{**gpu_layout, "images": tiny.images}))
    assert view.operators[0] == "ReadRange->MapBatches(_make_images)", view.operators


@pytest.mark.parametrize("shape", SHAPES)
def test_every_fusion_reason_agrees_with_rays_own_decision(ray_local, tiny, shape):
    view = explain(tiny.replace(**SHAPES[shape]))
    assert view.fusions
    for f in view.fusions:
        assert f.fused == f.reason.startswith("fused:"), f  # our mirror of the rule explains exactly Ray's choices
        assert "\n" not in f.reason
        if f.fused:  # a fused pair runs as one operator named "up->down"
            assert any(f"{f.upstream}->{f.downstream}" in op for op in view.operators), f


def test_fusion_reasons_name_the_actor_pool_and_the_concurrency(ray_local, tiny):
    actor = explain(tiny).fusions
    assert any(f.fused and "actor pool" in f.reason for f in actor)
    ensemble = explain(tiny.replace(**SHAPES["ensemble"])).fusions
    between = [f for f in ensemble if f.upstream == f.downstream == "MapBatches(Predictor)"]
    assert between and not between[0].fused and "actor pool" in between[0].reason
    naive = explain(tiny.replace(**SHAPES["naive"])).fusions
    into_model = next(f for f in naive if f.downstream == "MapBatches(naive_predict)")
    assert not into_model.fused and "at most 2 at once" in into_model.reason


def test_block_count_is_images_over_rows_per_block(tiny):
    for config in (tiny, tiny.replace(images=1000, image_size=128), tiny.replace(images=333, batch_size=64)):
        layout = block_layout(config)
        assert layout.rows_per_block == rows_per_block(config)
        assert layout.blocks == math.ceil(config.images / layout.rows_per_block)
        assert layout.block_bytes == layout.rows_per_block * config.image_size**2 * 3
    assert block_layout(tiny.replace(data="jpeg")).blocks is None  # a reader decides at run time


def test_store_budget_is_the_one_rays_executor_applies(ray_local, tiny):
    from engine.core.pipeline import build

    # 16 rows per 1 MB block: 25 blocks, more than the executor reads before it learns the cluster's size
    config = tiny.replace(images=400, image_size=128, model="mobilenet_v3_large")
    budget = store_budget(config)
    ds = build(config, None, "budget")
    applied = set()
    for _ in ds.iter_batches(batch_size=None):  # Ray's executor learns the cluster's size shortly after it starts
        applied.add(ds._current_executor._resource_manager.get_global_limits().object_store_memory)
        if budget.budget_bytes in applied:
            break  # ending the iteration ends the execution
        time.sleep(0.2)
    assert budget.budget_bytes in applied, f"the executor applied {sorted(applied)}"
    assert budget.budget_bytes == budget.cluster_bytes * budget.fraction and budget.limit_bytes is None
    assert store_budget(tiny.replace(object_store_limit_mb=64)).budget_bytes == 64 * 2**20


def test_a_streamed_run_reports_its_final_stage_times(ray_local, tiny):
    config = tiny.replace(images=48, image_size=128)  # 16 rows per 1 MB block: 3 blocks
    run = ray_local.submit(config)
    assert finish(run)["status"] == "finished", run.error
    times = operator_times(run)  # the executor's final account, not the snapshot taken at the first batch
    assert [t.operator for t in times] == explain(config).operators
    assert times[0].blocks_out == 3 and times[-1].tasks == 3 and times[-1].rows_out == 48
    assert latest_finished(ray_local.runs) is run


def test_a_materialized_run_finishes_with_its_stats_plan_and_peak_store(ray_local, tiny):
    config = tiny.replace(images=48, image_size=128, materialize=True)  # 16 rows per 1 MB block: 3 blocks
    run = ray_local.submit(config)
    summary = finish(run)
    assert summary["status"] == "finished", summary["error"]
    assert summary["rows"] == config.images
    assert "MapBatches(Predictor)" in summary["stats"]
    assert "ActorPoolMapOperator" in summary["plan"]  # the lazy pipeline's plan, not the materialized copy's
    times = operator_times(run)
    assert [t.operator for t in times] == explain(config).operators
    assert times[0].blocks_out == block_layout(config).blocks == 3
    assert times[-1].rows_out == config.images and all(t.wall_s >= 0 for t in times)
    use = store_use(run)
    assert use.materialized and use.status == "finished"
    assert use.peak_bytes is not None and use.peak_bytes == summary["peak_object_store_bytes"]
    assert use.first_read_s is not None and use.output_bytes > 0
    assert latest_finished(ray_local.runs) is run


def _labels(at: AppTest, kind: str) -> set[str]:
    return {w.label for w in getattr(at, kind)}


def _open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    return at.switch_page(PAGE).run()


def test_page_shows_plans_blocks_and_asks_for_a_run_when_there_is_none(ray_local, monkeypatch):
    monkeypatch.setattr(ray_local, "runs", [])
    at = _open_page()
    assert not at.exception
    assert {"Model", "Stages"} <= _labels(at, "selectbox")
    assert {"Batch size", "Concurrency", "Block size (MB)", "Images"} <= _labels(at, "slider")
    assert "Image size (px)" in _labels(at, "select_slider") and "Pipeline" in _labels(at, "radio")
    assert "Run both ways" in _labels(at, "button")
    code = "\n".join(c.value for c in at.code)  # the page opens on the three-stage pipeline
    assert "Read[ReadRange]" in code and "TaskPoolMapOperator[MapBatches(resize_images)]" in code
    assert any("Runs as 3 operator(s)" in m.value for m in at.markdown)
    assert {m.label for m in at.metric} >= {"Blocks", "Rows per block", "Block size", "Object-store budget"}
    assert any(m.value.startswith("**Decoding.** Synthetic images need no decoding") for m in at.markdown)
    assert any("launch a run on the Playground first" in i.value for i in at.info)
    at.selectbox(key="an_stages").set_value("Inference only").run()
    code = "\n".join(c.value for c in at.code)
    assert "ActorPoolMapOperator[MapBatches(_make_images)->MapBatches(Predictor)]" in code
    assert any("Runs as 2 operator(s)" in m.value for m in at.markdown)
    at.radio(key="an_pipeline").set_value("Naive").run()
    assert at.slider(key="an_batch").value == 4 and not at.exception
    assert any("not fused" in m.value and "at most 2 at once" in m.value for m in at.markdown)  # naive's model stage


def test_run_both_ways_from_the_page_compares_peaks_and_then_shows_stage_times(ray_local):
    at = _open_page()
    at.slider(key="an_images").set_value(16)
    at.select_slider(key="an_size").set_value(64)
    at.slider(key="an_batch").set_value(8)
    at.slider(key="an_block").set_value(1)
    next(b for b in at.button if b.label == "Run both ways").click().run()
    run_until(at, lambda page: any("Streaming handed its first result" in m.value for m in page.markdown), 300)
    assert not at.exception
    assert {m.label for m in at.metric} >= {"Streaming · finished", "Materialized · finished"}
    ids = at.session_state["both_ways"]
    assert any(f"From run `{ids[1]}`" in m.value for m in at.markdown)  # section 3 now reads the materialized run
