"""bench/results/README.md is the generated index of the results folder, and it stays in step with the folder."""

import json

from bench import index_results


def test_committed_index_matches_the_results_folder():
    committed = (index_results.RESULTS / "README.md").read_text(encoding="utf-8")
    assert committed == index_results.render(index_results.RESULTS), (
        "bench/results/README.md is out of date: run `python -m bench.index_results` and commit the result"
    )


def test_rows_are_read_from_the_files(tmp_path):
    bench_run = {
        "gpu": "NVIDIA H200",
        "command": "python -m bench.run_bench --cases ceiling,tuned_actor --out /root/out",
        "cases": {
            "ceiling": {"steady_images_per_sec": 15000.0},
            "tuned_actor": {"steady_images_per_sec": 12000.0},
        },
    }
    (tmp_path / "2026-12-01-nvidia-h200-side-by-side.json").write_text(json.dumps(bench_run))
    (tmp_path / "2026-12-03-cpu-notes.txt").write_text("# one CPU run\n$ python -m engine run --images 24 | tee out\n")
    (tmp_path / "README.md").write_text("stale index, not a result\n")

    text = index_results.render(tmp_path)
    rows = [line for line in text.splitlines() if line.startswith("| 2026-")]

    assert "do not edit it by hand" in text and "README.md](README.md)" not in text
    assert rows == [
        "| 2026-12-03 | CPU | notes | `python -m engine run --images 24 \\| tee out` | — "
        "| [2026-12-03-cpu-notes.txt](2026-12-03-cpu-notes.txt) |",
        "| 2026-12-01 | NVIDIA H200 | side by side: run_bench ceiling, tuned_actor "
        "| `python -m bench.run_bench --cases ceiling,tuned_actor --out /root/out` "
        "| tuned_actor 12,000 img/s (80.0 % of ceiling) "
        "| [2026-12-01-nvidia-h200-side-by-side.json](2026-12-01-nvidia-h200-side-by-side.json) |",
    ]


def test_a_real_time_result_is_headed_by_its_verdict():
    verdict = {"target_p99_ms": 50.0, "realtime_max_rate_within_target": 800.0, "batch_steady_images_per_sec": 9188.0}
    assert index_results.headline({"verdict": verdict}, []) == "real-time 800 req/s within p99 50 ms; batch 9,188 img/s"
    none_met = {**verdict, "realtime_max_rate_within_target": None}
    assert index_results.headline({"verdict": none_met}, []).startswith("real-time no rate within p99 50 ms")
