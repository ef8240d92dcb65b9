"""Chart builders: units, a time axis, and one line per GPU across nodes (points shaped as the sampler makes them)."""

import pytest

from ui import charts


def point(t, node_gpus):
    return {
        "t": t, "rows": 0, "images_per_sec": 0.0, "cumulative_images_per_sec": 0.0,
        "gpus": [{"node": n, "index": i, "util_pct": 50.0, "mem_used_bytes": 2**30, "mem_total_bytes": 8 * 2**30}
                 for n, i in node_gpus],
        "object_store_used_bytes": 3 * 2**20, "object_store_capacity_bytes": 2**30, "object_store_spilled_bytes": 0,
        "object_store_by_node": {"a": 2**20, "b": 2 * 2**20},
    }  # fmt: skip


def test_gpu_lines_are_named_by_node_when_there_are_several():
    points = [point(t, [("a", 0), ("b", 0), ("b", 1)]) for t in (0.5, 1.0)]
    names = [trace.name for trace in charts.gpu_util(points).data]
    assert names == ["a GPU 0", "b GPU 0", "b GPU 1"]
    assert [trace.name for trace in charts.gpu_util(points, node="b").data] == ["GPU 0", "GPU 1"]
    assert charts.gpu_util(points).layout.xaxis.title.text == "time since Launch (s)"


def test_object_store_for_one_node_and_in_readable_units():
    points = [point(t, []) for t in (0.5, 1.0)]
    whole, one = charts.object_store(points), charts.object_store(points, node="b")
    assert whole.layout.yaxis.title.text == "MiB (of 1.0 GiB)" and list(whole.data[0].y) == [3.0, 3.0]
    assert list(one.data[0].y) == [2.0, 2.0] and "on b" in one.layout.title.text
    assert tuple(whole.layout.yaxis.range) == (0, 0.05 * 1024)  # 3 MiB of 1 GiB: a sliver, not a full chart
    busier = [{**p, "object_store_used_bytes": 100 * 2**20} for p in points]  # the axis follows the peak
    assert charts.object_store(busier).layout.yaxis.range == pytest.approx((0, 115))


def test_every_projector_chart_sets_each_text_size_itself():
    """Streamlit's theme gives ticks and axis titles sizes of its own: the projector view must set each one."""
    points = [point(t, [("a", 0)]) for t in (0.5, 1.0)]
    figures = [
        builder(points, style=charts.PROJECTOR)
        for builder in (charts.throughput, charts.object_store, charts.gpu_util, charts.gpu_memory, charts.host)
    ]
    figures.append(charts.startup_timeline({"connect_ray": 0.1}, [{"start_s": 0.1, "end_s": 0.3}], charts.PROJECTOR))
    for fig in figures:
        layout = fig.layout
        sizes = [layout.font.size, layout.legend.font.size, layout.xaxis.tickfont.size, layout.yaxis.tickfont.size,
                 layout.xaxis.title.font.size, layout.yaxis.title.font.size]  # fmt: skip
        assert all(size is not None and size >= 18 for size in sizes), (layout.title.text, sizes)
