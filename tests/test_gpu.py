"""On a GPU host: per-GPU metrics for every GPU, and a run that really uses one. Skipped without a GPU."""

import pytest

from engine import nvml, start
from tests.conftest import finish

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not nvml.read_gpus(), reason="no NVIDIA GPU on this machine")]


def test_every_gpu_is_sampled_and_a_gpu_run_finishes(ray_local, tiny):
    summary = finish(start(tiny.replace(num_gpus=1, precision="bf16", images=512, image_size=224, batch_size=64)))
    assert summary["status"] == "finished", summary["error"]
    expected = len(nvml.read_gpus())
    last = summary["timeseries"][-1]
    assert len(last["gpus"]) == expected  # one reading per GPU of the host
    assert all(g["mem_total_bytes"] > 0 and g["util_pct"] is not None for g in last["gpus"])
    assert summary["peak_gpu_mem_used_bytes"] > 0


def test_cuda_waits_sleep_instead_of_spinning():
    """The flag is set in a fresh process before its CUDA context exists, as in a new actor."""
    import os
    import subprocess
    import sys

    code = (
        "import torch\nfrom engine.inference import sleep_while_waiting_for_gpu as s\nprint(s())\ntorch.ones(1).cuda()"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90, check=True, cwd=root)
    assert out.stdout.split()[0] == "0"  # cudaSuccess


def test_cuda_graph_replay_matches_the_eager_forward_on_every_thread():
    """Full batches replay each thread's graph; a remainder runs eagerly; both agree with the eager pass."""
    import threading

    import torch

    from engine.inference import Predictor

    predictor = Predictor("resnet18", None, "fp32", batch_size=8)
    batches = [torch.randint(0, 256, (8, 64, 64, 3), dtype=torch.uint8, device="cuda") for _ in range(4)]
    with torch.inference_mode():
        expected = [predictor.logits(b).float() for b in batches]
        errors: list[float] = []

        def work(mine: list[int]) -> None:
            for _ in range(3):
                for i in mine:
                    errors.append((predictor.forward(batches[i]) - expected[i]).abs().max().item())

        threads = [threading.Thread(target=work, args=([0, 1],)), threading.Thread(target=work, args=([2, 3],))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        remainder = predictor.forward(batches[0][:5])
        assert not hasattr(predictor._local, "graph")  # this (main) thread ran only a remainder: no graph
        assert torch.allclose(remainder, expected[0][:5], atol=1e-3)
    assert len(errors) == 12 and max(errors) < 1e-2  # a graph replays the same kernels (cudnn may pick others)
