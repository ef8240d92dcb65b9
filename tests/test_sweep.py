"""Sweeps: a real grid of tiny runs, a failing cell that does not stop it, the recommendation and the CLI."""

import json
import os

import pytest
from streamlit.testing.v1 import AppTest

from engine import ConfigError
from engine.cli import main
from engine.insight.sweep import Sweep, parse_grid
from tests.conftest import TINY
from tests.test_pages import APP, run_until


def test_grid_parsing_refuses_bad_lists_in_one_line():
    assert parse_grid("64, 16,16", "--batch-sizes") == [16, 64]
    for bad in ("", "a,b", "1.5"):
        with pytest.raises(ConfigError) as err:
            parse_grid(bad, "--batch-sizes")
        assert "\n" not in str(err.value)


def test_a_bad_grid_is_refused_before_anything_runs(tiny):
    with pytest.raises(ConfigError, match="batch_size"):
        Sweep(tiny, [0, 8], [1], [1])


def test_rows_all_arriving_at_once_have_no_steady_rate_and_cells_then_rank_by_the_whole_run():
    from engine.insight.summary import steady_rate

    at_once = [{"t": 0.5, "rows": 0}, {"t": 5.1, "rows": 24}, {"t": 5.6, "rows": 24}]
    assert steady_rate(at_once, first_result_s=5.1) is None  # not a rate of zero
    flowing = [{"t": 5.1, "rows": 8}, {"t": 6.1, "rows": 16}, {"t": 7.1, "rows": 24}]
    assert steady_rate(flowing, first_result_s=5.1) == 8.0
    sweep = Sweep(TINY, [8, 16], [1], [1])
    for cell, steady, whole in zip(sweep.cells, (None, 12.0), (4.6, 9.0), strict=True):
        cell.status, cell.steady_images_per_sec, cell.images_per_sec = "finished", steady, whole
    assert sweep.measure() == "images_per_sec" and sweep.recommended() is sweep.cells[1]


def skip_where_256_cpu_actors_fit() -> None:
    from engine.observe.cluster import nodes

    if sum(n.cpus for n in nodes()) >= 26:
        pytest.skip("256 CPU actors fit on this machine; the failing cell needs fewer than 26 CPUs")


def test_a_failing_cell_does_not_stop_the_sweep_and_a_recommendation_follows(ray_local, tiny):
    skip_where_256_cpu_actors_fit()
    # 256 CPU actors cannot all start here: that cell fails at once with a one-line cause, the other runs.
    sweep = Sweep(tiny, [8], [1, 256], [1])
    assert sweep.start(ray_local).wait(300)
    assert [c.status for c in sweep.cells] == ["finished", "failed"]
    assert "CPU actors" in sweep.cells[1].error and "\n" not in sweep.cells[1].error
    best = sweep.recommended()
    assert best is sweep.cells[0] and sweep.rate(best) > 0  # the failed cell is never recommended
    out = sweep.to_dict()
    assert len(out["cells"]) == 2 and out["recommended"]["batch_size"] == best.batch_size
    assert sweep.to_csv().count("\n") == 3  # header + 2 cells


def test_stopping_a_sweep_skips_the_rest(ray_local, tiny):
    sweep = Sweep(tiny.replace(images=64), [4, 8], [1], [1]).start(ray_local)
    while sweep.current is None:
        pass
    sweep.stop()
    assert sweep.wait(120)
    assert sweep.status == "stopped" and sweep.cells[-1].status == "skipped"


def test_cli_sweep_writes_cells_and_recommendation(ray_local, tmp_path, capsys):
    skip_where_256_cpu_actors_fit()
    out = tmp_path / "sweep.json"
    argv = ["sweep", "--images", "16", "--image-size", "32", "--batch-sizes", "4", "--concurrency", "1,256"]
    code = main([*argv, "--block-size-mb", "1", "--quiet", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert [c["status"] for c in result["cells"]] == ["finished", "failed"]  # 256 CPU actors cannot start here
    assert result["recommended"]["rate"] > 0 and result["command"].startswith("python -m engine sweep")
    assert "recommended: batch" in capsys.readouterr().out


def test_cli_sweep_bad_grid_exits_2(capsys):
    assert main(["sweep", "--batch-sizes", "x"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def sweep_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    return at.switch_page(os.path.join(os.path.dirname(APP), "pages", "sweep.py")).run()


def test_sweep_page_runs_a_grid_to_heatmaps_and_a_recommendation(ray_local):
    at = sweep_page()
    assert not at.exception
    assert {"Batch sizes", "Concurrency", "Block sizes (MB)"} <= {m.label for m in at.multiselect}
    at.slider(key="sw_images").set_value(16)
    at.multiselect(key="sw_batches").set_value([4, 8])
    at.multiselect(key="sw_concurrency").set_value([1])
    at.multiselect(key="sw_blocks").set_value([1])
    next(b for b in at.button if b.label == "Run sweep").click().run()
    run_until(at, lambda page: any(d.label == "Download CSV" for d in page.get("download_button")), 240)
    shown = [m.value for m in (*at.success, *at.warning, *at.error)]
    assert any("Recommended" in s.value for s in at.success), shown
    assert not at.exception
    assert any("No NVIDIA GPU" in c.value for c in at.caption)  # the no-GPU path of the memory heatmap
    assert any(d.label == "Download CSV" for d in at.get("download_button"))


def test_sweep_page_refuses_an_empty_grid(ray_local):
    at = sweep_page()
    at.multiselect(key="sw_batches").set_value([])
    next(b for b in at.button if b.label == "Run sweep").click().run()
    assert [e.value for e in at.error] == ["Pick at least one batch size, one concurrency and one block size."]
