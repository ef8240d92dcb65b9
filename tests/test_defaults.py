"""One source of defaults: the layout picked for the resources Ray reports, in every entry point."""

import pytest

from engine.core.defaults import Machine, fill, pick_layout

H100 = Machine(gpus=1, cpus=16, gpu_name="NVIDIA H100 80GB HBM3", gpu_mem_gb=79.6)


def test_a_gpu_machine_gets_the_tuned_gpu_layout_and_a_line_saying_so():
    layout = pick_layout("actor", H100)
    assert (layout.concurrency, layout.num_gpus, layout.batch_size, layout.precision, layout.block_size_mb) == (
        4, 0.25, 256, "bf16", 64)  # fmt: skip
    assert layout.calls_per_actor == 3
    assert layout.describe() == (
        "defaults for 1 × NVIDIA H100 80GB HBM3: 4 actor(s) × 0.25 GPU, batch 256, bf16, 64 MB blocks"
    )


def test_two_gpus_get_four_actors_each_and_small_gpus_fewer():
    assert pick_layout("actor", Machine(gpus=2, cpus=32, gpu_mem_gb=80)).concurrency == 8
    small = pick_layout("actor", Machine(gpus=1, cpus=8, gpu_mem_gb=12))
    assert (small.concurrency, small.num_gpus, small.batch_size) == (1, 1.0, 64)


def test_a_cpu_machine_or_device_cpu_gets_the_cpu_layout():
    for layout in (pick_layout("actor", Machine(cpus=2)), pick_layout("actor", H100, device="cpu")):
        assert (layout.concurrency, layout.num_gpus, layout.batch_size, layout.precision) == (1, 0.0, 32, "fp32")


def test_the_naive_default_is_sized_for_a_short_demo():
    assert pick_layout("naive", Machine(cpus=2)).images == 64
    assert pick_layout("naive", H100).num_gpus == 0.5


def test_what_a_caller_sets_wins_and_the_rest_is_named():
    values, layout = fill({"batch_size": 64, "concurrency": None}, pick_layout("actor", H100))
    assert values["batch_size"] == 64 and values["concurrency"] == 4
    assert "batch_size" not in layout.applied and "concurrency" in layout.applied


@pytest.fixture
def gpu_host(monkeypatch):
    """Ray reports one H100 (as on a GPU host); nothing is connected for real."""
    from engine.cli import runs

    monkeypatch.setattr(runs, "connect_for_cli", lambda address: address)
    monkeypatch.setattr(runs, "detect_machine", lambda: H100)


def test_the_cli_with_no_flags_runs_the_gpu_layout_on_a_gpu_host_and_says_so(gpu_host, monkeypatch, capsys):
    from engine.cli import main, runs

    started = []
    monkeypatch.setattr(runs, "follow", lambda config, quiet: started.append(config) or {"status": "finished"})
    monkeypatch.setattr(runs, "human", lambda summary: "")
    assert main(["run", "--model", "resnet50", "--images", "30000"]) == 0
    (config,) = started
    assert (config.concurrency, config.num_gpus, config.batch_size, config.precision) == (4, 0.25, 256, "bf16")
    assert config.defaults.startswith("defaults for 1 × NVIDIA H100 80GB HBM3") and config.images == 30000
    out = capsys.readouterr().out
    assert "defaults for 1 × NVIDIA H100 80GB HBM3: 4 actor(s) × 0.25 GPU, batch 256, bf16, 64 MB blocks" in out


def test_cli_flags_override_the_defaults_and_device_cpu_keeps_the_cpu(gpu_host, monkeypatch):
    from engine.cli import main, runs

    started = []
    done = {"status": "finished", "images_per_sec": 1.0}
    monkeypatch.setattr(runs, "follow", lambda config, quiet: started.append(config) or done)
    monkeypatch.setattr(runs, "human", lambda summary: "")
    assert main(["run", "--batch-size", "64", "--num-gpus", "1"]) == 0
    assert (started[-1].batch_size, started[-1].num_gpus, started[-1].concurrency) == (64, 1.0, 1)
    assert main(["run", "--device", "cpu"]) == 0
    assert (started[-1].num_gpus, started[-1].precision, started[-1].batch_size) == (0.0, "fp32", 32)
    assert main(["compare", "--images", "64"]) == 0
    naive, actor = started[-2:]
    assert (naive.pipeline, naive.num_gpus, actor.pipeline, actor.concurrency) == ("naive", 0.5, "actor", 4)
