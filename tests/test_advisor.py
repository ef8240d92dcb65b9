"""The Advisor: the framework's arithmetic, `python -m engine advise`, and the page with a real Verify run."""

import json
import os

import psutil
import pytest
from streamlit.testing.v1 import AppTest

from engine.execution import connection
from engine.insight import advisor
from engine.insight.advisor import AdviceError, advise, explain, predicted, verify_config
from engine.observe import cluster, nvml
from engine.observe.cluster import NodeInfo
from tests.conftest import run_cli
from tests.test_pages import run_until
from ui.text import plain

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app.py")
PAGE = os.path.join(os.path.dirname(APP), "pages", "advisor.py")
WORKED = {"gpus": 8, "gpu_mem_gb": 16, "node_mem_gb": 64, "model_size_gb": 5, "batch_mem_gb": 2}


# --- the framework -----------------------------------------------------------------------------------------------


def test_the_tutorials_worked_example_is_six_actors_bound_by_memory():
    advice = advise(**WORKED)
    assert advice.concurrency == 6 and advice.binding == "memory"
    assert {name: c["value"] for name, c in advice.constraints.items()} == {"gpus": 8, "memory": 6, "object_store": 8}
    # (16 - 5) GB x 1024 x 0.9 / 3 MB = 3379 samples -> 2048; 4 x 2048 x 224 x 224 x 3 B = 1176 MB
    assert advice.batch_size == 2048 and advice.block_size_mb == 1176 and advice.blocks_in_flight == 2
    assert advice.constraints["memory"]["formula"] == (
        "floor(0.7 x 64 GB heap / (5 GB model + 2 GB batch)) = floor(44.8 / 7) = 6"
    )
    assert "2 blocks in flight x 1176 MB" in advice.constraints["object_store"]["formula"]
    assert explain(advice).startswith("Memory binds") and "\n" not in explain(advice)


def test_gpus_bind_on_a_node_with_memory_to_spare():
    advice = advise(gpus=2, gpu_mem_gb=80, node_mem_gb=512, model_size_gb=5)
    assert advice.concurrency == 2 and advice.binding == "gpus"


def test_the_object_store_binds_when_blocks_are_big():
    advice = advise(**{**WORKED, "gpu_mem_gb": 24})  # 19 GB free -> batch 4096 -> 2352 MB blocks
    assert advice.batch_size == 4096 and advice.block_size_mb == 2352
    assert advice.concurrency == 4 and advice.binding == "object_store"


def test_more_calls_per_actor_mean_more_blocks_in_flight():
    advice = advise(**WORKED, calls_per_actor=2)
    assert advice.blocks_in_flight == 4
    assert advice.constraints["object_store"]["value"] == 4 and advice.binding == "object_store"


def test_a_tie_goes_to_the_first_of_gpus_memory_object_store():
    advice = advise(**{**WORKED, "gpus": 6})
    assert advice.constraints["memory"]["value"] == 6 and advice.binding == "gpus"


def test_floor_is_not_fooled_by_float_error():
    # 0.7 x 21 / 2.1 is 6.999999999999999 in floats; seven 2.1 GB actors fit in 14.7 GB
    advice = advise(gpus=8, gpu_mem_gb=16, node_mem_gb=21, model_size_gb=0.1, batch_mem_gb=2.0, image_size=32)
    assert advice.constraints["memory"]["value"] == 7 and advice.binding == "memory"


def test_batch_and_block_size_are_capped_at_the_engine_limits():
    advice = advise(gpus=1, gpu_mem_gb=141, node_mem_gb=2048, model_size_gb=1, sample_mb=1, image_size=1024)
    assert advice.batch_size == 8192 and "at most 8192" in advice.sizing["batch_size"]
    assert advice.block_size_mb == 4096 and "at most 4096" in advice.sizing["block_size_mb"]


def test_when_not_even_one_actor_fits_concurrency_is_one_and_it_says_so():
    advice = advise(gpus=8, gpu_mem_gb=16, node_mem_gb=4, model_size_gb=5)
    assert advice.constraints["memory"]["value"] == 0 and advice.concurrency == 1
    assert "Not even one actor fits" in explain(advice)


def test_a_model_bigger_than_the_gpu_is_refused_in_one_line():
    with pytest.raises(AdviceError, match="^the model does not fit in GPU memory") as caught:
        advise(**{**WORKED, "model_size_gb": 16})
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "change",
    [
        {"gpus": 0},
        {"gpus": -1},
        {"gpus": 1.5},
        {"gpus": True},
        {"gpu_mem_gb": 0},
        {"gpu_mem_gb": -16},
        {"node_mem_gb": 0},
        {"node_mem_gb": float("nan")},
        {"model_size_gb": -1},
        {"sample_mb": 0},
        {"batch_mem_gb": 0},
        {"image_size": 8},
        {"calls_per_actor": 0},
        {"sample_mb": 50_000},  # not one sample fits beside the model
    ],
)
def test_bad_inputs_are_refused_in_one_line(change):
    with pytest.raises(AdviceError) as caught:
        advise(**{**WORKED, **change})
    assert "\n" not in str(caught.value) and str(caught.value)


def test_predicted_use_of_a_run_with_the_advice():
    advice = advise(**WORKED)
    full = predicted(advice)
    assert full["peak_object_store_bytes"] == 6 * 2 * 1176 * 2**20
    assert full["heap_per_actor_gb"] == 7 and full["gpu_mem_per_actor_gb"] == 5 + 2048 * 3 / 1024
    small = predicted(advice, concurrency=2, images=32)  # a clipped Verify run holds at most its 32 images
    assert small["peak_object_store_bytes"] == 32 * 224 * 224 * 3
    assert small["gpu_mem_per_actor_gb"] == 5 + 32 * 3 / 1024 and small["concurrency"] == 2


def test_verify_is_clipped_to_the_cpus_without_a_gpu_and_says_why():
    config, notes = verify_config(advise(**WORKED), "resnet18", images=5000, gpus=0, cpus=2)
    assert config.validate() is config
    assert (config.num_gpus, config.concurrency, config.images) == (0.0, 2, advisor.CPU_VERIFY_IMAGES)
    assert (config.batch_size, config.block_size_mb) == (2048, 1176)
    assert any("no GPU" in n for n in notes) and any("6 -> 2" in n for n in notes)


def test_verify_on_a_gpu_cluster_is_one_actor_per_gpu_it_really_has():
    config, notes = verify_config(advise(**WORKED), "resnet18", images=5000, gpus=1, cpus=16)
    assert (config.num_gpus, config.concurrency, config.images) == (1.0, 1, 5000)
    assert notes == ["concurrency 6 -> 1: this cluster has 1 GPU(s)"]


def test_this_machine_is_detected_from_ray_and_psutil(ray_local):
    machine = advisor.detect_machine("resnet18")
    assert machine["node_mem_gb"] == round(psutil.virtual_memory().total / 2**30, 1)
    assert machine["model_size_gb"] == advisor.model_size_gb("resnet18") > 0
    if not nvml.read_gpus():
        assert machine["gpus"] == 0 and machine["gpu_mem_gb"] is None
        assert advisor.prefill(machine)["gpus"] == 1 and advisor.prefill(machine)["gpu_mem_gb"] == 16


def test_a_gpu_node_is_prefilled_as_it_is(ray_local, monkeypatch):
    node = NodeInfo(
        "n1", "10.0.0.1", cpus=64, gpus=8, object_store_bytes=60 * 2**30, alive=True, heap_bytes=140 * 2**30
    )
    monkeypatch.setattr(cluster, "nodes", lambda: [node])
    monkeypatch.setattr(connection, "connected_address", lambda: "10.0.0.1:6379")
    monkeypatch.setattr(nvml, "read_gpus", lambda: [nvml.GpuReading(0, "NVIDIA H100", 0.0, 0, 80 * 2**30)])
    values = advisor.prefill(advisor.detect_machine("resnet18"))
    assert (values["gpus"], values["gpu_mem_gb"], values["node_mem_gb"]) == (8, 80.0, 200.0)


# --- the command line ----------------------------------------------------------------------------------------------


def test_advise_prints_each_constraint_and_writes_the_json(tmp_path, capsys):
    out = tmp_path / "advice.json"
    flags = ["--gpus", "8", "--gpu-mem-gb", "16", "--node-mem-gb", "64", "--model-size-gb", "5"]
    assert run_cli("advise", *flags, "--json", str(out)) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed[:3]] == ["gpus", "memory", "object_store"]
    assert printed[1].endswith("<- binds") and "binds" not in printed[0] + printed[2]
    assert "concurrency 6, batch size 2048, block size 1176 MB (memory binds)" in "\n".join(printed)
    payload = json.loads(out.read_text())
    expected = {"concurrency", "batch_size", "block_size_mb", "binding", "constraints", "inputs", "predicted"}
    assert expected <= set(payload)
    assert payload["concurrency"] == 6 and payload["binding"] == "memory"
    assert {k: c["value"] for k, c in payload["constraints"].items()} == {"gpus": 8, "memory": 6, "object_store": 8}
    assert payload["inputs"]["sample_mb"] == 3.0 and payload["predicted"]["heap_per_actor_gb"] == 7


@pytest.mark.parametrize(
    "args",
    [
        ["--gpus", "0", "--gpu-mem-gb", "16", "--node-mem-gb", "64", "--model-size-gb", "5"],
        ["--gpus", "8", "--gpu-mem-gb", "16", "--node-mem-gb", "-64", "--model-size-gb", "5"],
        ["--gpus", "8", "--gpu-mem-gb", "16", "--node-mem-gb", "64", "--model-size-gb", "40"],
        ["--gpus", "8", "--gpu-mem-gb", "16", "--node-mem-gb", "64", "--model-size-gb", "5", "--sample-mb", "0"],
        ["--gpus", "eight", "--gpu-mem-gb", "16", "--node-mem-gb", "64", "--model-size-gb", "5"],
        ["--gpus", "8", "--gpu-mem-gb", "16", "--node-mem-gb", "64"],
        ["--gpus", "8", "--gpu-mem-gb", "16", "--node-mem-gb", "64", "--model-size-gb", "5", "--json", "/no/dir/a"],
    ],
)
def test_advise_refuses_bad_values_in_one_line_with_exit_2(args, capsys):
    assert run_cli("advise", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err


# --- the page ------------------------------------------------------------------------------------------------------


@pytest.fixture
def page(ray_local):
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


def enter(at: AppTest, **values) -> AppTest:
    for name, value in values.items():
        at.number_input(key=f"adv_{name}").set_value(value)
    return at.run()


def test_the_page_has_every_labelled_input_prefilled(page):
    labels = {w.label for w in page.number_input}
    assert {
        "GPUs",
        "GPU memory (GB)",
        "Node memory (GB)",
        "Model size (GB)",
        "GPU memory per sample (MB)",
        "Batch memory (GB)",
    } <= labels
    assert page.number_input(key="adv_model_size_gb").value == advisor.model_size_gb("resnet18")
    if not nvml.read_gpus():
        assert any("No NVIDIA GPU here: enter the GPU machine you plan for" in i.value for i in page.info)
        assert page.number_input(key="adv_gpus").value == 1 and page.number_input(key="adv_gpu_mem_gb").value == 16
    page.selectbox(key="adv_model").set_value("resnet50").run()
    assert page.number_input(key="adv_model_size_gb").value == advisor.model_size_gb("resnet50")


def test_a_gpu_machine_is_prefilled_and_named(ray_local, monkeypatch):
    machine = {"gpus": 8, "gpu_name": "NVIDIA H100", "gpu_mem_gb": 80.0, "node_mem_gb": 200.0, "model_size_gb": 0.044}
    monkeypatch.setattr(advisor, "detect_machine", lambda model: machine)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(PAGE).run()
    assert not at.exception and not at.info[:-1]  # only the explanation: no "No NVIDIA GPU here"
    assert any("8 GPU(s) (NVIDIA H100, 80 GB each), 200 GB" in c.value for c in at.caption)
    assert (at.number_input(key="adv_gpus").value, at.number_input(key="adv_gpu_mem_gb").value) == (8, 80.0)


def test_the_worked_example_on_the_page_is_six_bound_by_memory(page):
    enter(page, gpus=8, gpu_mem_gb=16.0, node_mem_gb=64.0, model_size_gb=5.0, sample_mb=3.0, batch_mem_gb=2.0)
    assert not page.exception
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["Concurrency"] == "6" and metrics["Batch size"] == "2048" and metrics["Block size (MB)"] == "1176"
    table = page.dataframe[0].value
    assert list(table.loc[table["binds"] != "", "constraint"]) == ["Memory (heap)"]
    assert list(table["max actors"]) == [8, 6, 8]
    assert any(i.value.startswith("Memory binds") for i in page.info)


def test_a_bad_input_is_one_error_line_and_no_advice(page):
    enter(page, node_mem_gb=0.0)
    assert not page.exception
    assert [e.value for e in page.error] == [plain("node_mem_gb must be a number above 0 (got 0.0)")]
    assert not any(m.label == "Concurrency" for m in page.metric)
    enter(page, node_mem_gb=64.0, model_size_gb=40.0)
    assert len(page.error) == 1 and page.error[0].value.startswith("the model does not fit in GPU memory")


def test_verify_runs_the_advice_for_real_and_compares_prediction_with_measurement(page):
    if ray_gpus := sum(n.gpus for n in cluster.nodes() if n.alive):
        pytest.skip(f"this checks the CPU clipping; the cluster has {ray_gpus:g} GPU(s)")
    enter(page, gpus=1, image_size=32, images=32)  # one actor: the clipping to the CPUs is checked above
    assert int(page.metric[0].value) == 1 and "no GPU" in page.warning[0].value
    next(b for b in page.button if b.label == "Verify").click().run()
    run_until(page, lambda at: any("predicted" in d.value.columns for d in at.dataframe) or at.error)
    assert not page.error and not page.exception
    table = next(d.value for d in page.dataframe if "predicted" in d.value.columns).set_index("")
    assert table.loc["Peak GPU memory", "measured"] == "no GPU (ran on the CPU)"
    assert table.loc["Peak object store", "predicted"] == f"{32 * 32 * 32 * 3 / 2**20:,.1f} MB"
    assert table.loc["Peak object store", "measured"].endswith(" MB")
    assert "img/s" in table.loc["Throughput", "measured"]
