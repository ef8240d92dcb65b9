"""The benchmark's own flags: a bad value is one line and exit 2, before Ray or a GPU is touched."""

import pytest

from bench import decode_overlap, first_launch, gpu_sharing, run_bench, suite_cpu, warm_up
from engine.execution import connection


@pytest.mark.parametrize(
    "script, argv, says",
    [
        (run_bench.parse, ["--jpeg-images", "0"], "--jpeg-images must be at least 1"),
        (run_bench.parse, ["--object-store-limit-mb", "-5"], "--object-store-limit-mb must be at least 1"),
        (run_bench.parse, ["--cases", "ceiling,warp_speed"], "unknown case(s) warp_speed"),
        (run_bench.parse, ["--calls-per-actor", "0"], "--calls-per-actor must be at least 1"),
        (run_bench.parse, ["--jpeg-shape", "500by375"], "'500by375' is not WIDTHxHEIGHT, e.g. 500x375"),
        (run_bench.parse, ["--jpeg-shape", "900x375"], "each side must be 16 to 800 px, not 900x375"),
        (run_bench.parse, ["--jpeg-kb", "0"], "--jpeg-kb must be at least 1"),
        (run_bench.parse, ["--gpu-decoder", "nvimgcodec-hw+cpu"], "--gpu-decoder nvimgcodec-hw+cpu needs a CUDA GPU"),
        (warm_up.main, ["--runs", "0"], "--runs must be at least 1, not 0"),
        (first_launch.main, ["--images", "0"], "--images must be at least 1, not 0"),
        (first_launch.main, ["--delay-s", "-1"], "--delay-s must be 0 or more, not -1.0"),
        (gpu_sharing.main, ["--layouts", "4x"], "want PROCESSESxTHREADS"),
        (gpu_sharing.main, ["--layouts", "0x2"], "processes and threads must be at least 1"),
        (gpu_sharing.main, ["--inputs", "disk"], "want host, device or host,device"),
        (gpu_sharing.main, ["--seconds", "1"], "--seconds must be more than 1"),
        (gpu_sharing.main, ["--model", "resnet9000"], "model must be one of"),
        (gpu_sharing.main, ["--precision", "fp8"], "precision must be one of"),
        (decode_overlap.main, ["--batches", "0"], "--batches must be at least 1"),
        (decode_overlap.main, ["--model", "resnet9000"], "model must be one of"),
        (decode_overlap.main, ["--image-size", "0"], "image_size must be from 16 to 1024 (got 0)"),
        (decode_overlap.main, ["--decoders", "pil"], "--decoders takes nvimgcodec, torchvision, not pil"),
        (suite_cpu.main, ["--top", "0"], "--top must be at least 1, not 0"),
    ],
)
def test_bad_benchmark_flags_are_refused_in_one_line(script, argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        script(argv)
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert says in error


def test_decode_overlap_without_a_gpu_says_so_in_one_line(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the path of a machine without one, anywhere
    assert decode_overlap.main(["--batches", "1"]) == 2
    assert capsys.readouterr().err.strip() == "decode_overlap needs an NVIDIA GPU: CUDA streams are what it measures"


def test_a_photo_set_of_one_size_is_read_by_the_engine_as_a_folder_of_its_own():
    from engine.core.data import jpeg_dir

    args = run_bench.parse(["--images", "64", "--jpeg-shape", "500x375", "--jpeg-kb", "50"])
    assert (args.jpeg_shape, args.jpeg_kb) == ((375, 500), 50)
    bench = run_bench.Bench(args)
    assert bench.jpeg_set == {"shape": (375, 500), "aim_bytes": 50_000}
    assert bench.jpeg_data == jpeg_dir((375, 500), 50_000) != jpeg_dir()
    assert run_bench.Bench(run_bench.parse(["--images", "64"])).jpeg_data == "jpeg"  # the app's own photos


def test_speedups_and_the_table_come_from_steady_rates_and_say_which_decoder_ran():
    cases = {
        "ceiling": {"steady_images_per_sec": 10000.0, "gpu_util_mean": 99.0},
        "real_jpeg": {
            "steady_images_per_sec": 8000.0,
            "first_result_s": 1.5,
            "gpu_util_mean": 90.0,
            "jpeg_util_mean": 70.25,
            "decoder": "nvimgcodec (hardware)",
        },  # fmt: skip
        "torch_dataloader_jpeg_cpu": {"steady_images_per_sec": None},  # too short for a steady rate
    }
    ratios = run_bench.speedups(cases)
    assert ratios["real_jpeg_vs_ceiling"] == 0.8 and ratios["real_jpeg_vs_dataloader_jpeg_cpu"] is None
    row = next(line for line in run_bench.table(cases).splitlines() if line.startswith("| real_jpeg "))
    assert row == "| real_jpeg | 8000.0 | 80.0 | 1.50 | 90.0 | 70.2 | nvimgcodec (hardware) |"


def test_a_layout_the_engine_refuses_stops_the_benchmark_before_ray_starts(capsys, monkeypatch):
    monkeypatch.setattr(run_bench.connection, "connect", lambda *a: pytest.fail("Ray started for a bad layout"))
    assert run_bench.main(["--calls-per-actor", "9"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "calls_per_actor must be from 1 to 8" in error[0]


def test_tune_actor_refuses_a_negative_warm_up_in_one_line(capsys):
    from bench import tune_actor

    with pytest.raises(SystemExit) as exit_:
        tune_actor.main(["--warm-up-images", "-1"])
    assert exit_.value.code == 2
    assert "--warm-up-images must be 0 or more" in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(("args", "message"), [(["--image-size", "0"], "image_size"), (["--data", "/no/such"], "data")])
def test_tune_actor_refuses_a_bad_cell_before_ray_starts(capsys, monkeypatch, args, message):
    from bench import tune_actor

    monkeypatch.setattr(connection, "connect", lambda *a, **k: pytest.fail("Ray started for a bad cell"))
    with pytest.raises(SystemExit) as exit_:
        tune_actor.main(args)
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert message in error[-1]


@pytest.mark.parametrize(("args", "message"), [(["--cells", "0"], "--cells"), (["--images", "0"], "images")])
def test_first_pool_refuses_bad_input_in_one_line_before_ray_starts(capsys, monkeypatch, args, message):
    from bench import first_pool

    monkeypatch.setattr(connection, "connect", lambda *a, **k: pytest.fail("Ray started for bad input"))
    with pytest.raises(SystemExit) as exit_:
        first_pool.main(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.subprocess
def test_gpu_sharing_runs_a_real_layout_on_the_cpu(tmp_path):
    """One process, two threads, each calling the engine's Predictor: its build time, and a row per input kind."""
    import json

    out = tmp_path / "sharing.json"
    argv = ["--model", "resnet18", "--precision", "fp32", "--batch-size", "2", "--image-size", "32"]
    assert gpu_sharing.main([*argv, "--layouts", "1x2", "--seconds", "1.5", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [(r["processes"], r["threads"], r["inputs"]) for r in report["rows"]] == [(1, 2, "host"), (1, 2, "device")]
    assert all(r["images_per_sec"] > 0 and r["cpu_s_per_batch"] > 0 for r in report["rows"])
    assert [(load["processes"], len(load["load_s"])) for load in report["loads"]] == [(1, 1)]
    assert report["loads"][0]["load_s"][0] > 0
    assert report["command"].startswith("python -m bench.gpu_sharing --model resnet18")


def test_scaling_takes_any_gpu_counts_and_averages_each_gpu_over_the_steady_part():
    from bench.scaling import gpu_counts, per_gpu_utilisation

    assert gpu_counts("", 4) == [1, 4] and gpu_counts("2,1,4", 4) == [1, 2, 4]
    with pytest.raises(SystemExit, match="--gpus must be counts from 1 to 2"):
        gpu_counts("1,3", 2)
    points = [
        {"t": t, "gpus": [{"index": i, "node": "n", "util_pct": 10.0 * t + i} for i in range(2)]} for t in range(4)
    ]
    assert per_gpu_utilisation(points, first_result_s=2.0) == {"n GPU 0": 25.0, "n GPU 1": 26.0}


def test_suite_cpu_puts_each_process_on_its_kind_and_on_the_test_that_started_it():
    assert suite_cpu.kind("ray::MapWorker(MapBatches(Predictor))") == "ray::MapWorker"
    assert suite_cpu.kind("ray::IDLE") == "ray::IDLE"
    assert suite_cpu.kind("/venv/bin/python -m tests.lost_cluster /tmp/db") == "python tests.lost_cluster"
    assert suite_cpu.kind("/venv/bin/python -u /venv/ray/_private/log_monitor.py --x") == "python log_monitor.py"
    assert suite_cpu.kind("/usr/lib/chromium/chromium --headless") == "chromium"
    starts = [(10.0, "tests/a.py::one"), (20.0, "tests/a.py::two")]
    processes = [
        {"cmdline": "ray::IDLE", "created": 5.0, "cpu_s": 1.0},
        {"cmdline": "ray::MapWorker(MapBatches(Predictor))", "created": 12.0, "cpu_s": 6.0},
        {"cmdline": "ray::MapWorker(MapBatches(Predictor))", "created": 25.0, "cpu_s": 8.0},
        {"cmdline": "ray::IDLE", "created": 26.0, "cpu_s": 5.5},
    ]
    result = suite_cpu.attribute(processes, starts)
    assert result["cpu_s"] == 20.5
    assert result["by_kind"] == [{"name": "ray::MapWorker", "cpu_s": 14.0, "processes": 2},
                                 {"name": "ray::IDLE", "cpu_s": 6.5, "processes": 2}]  # fmt: skip
    assert [(r["name"], r["cpu_s"]) for r in result["by_test"]] == [
        ("tests/a.py::two", 13.5), ("tests/a.py::one", 6.0), ("(before the first test)", 1.0)]  # fmt: skip
