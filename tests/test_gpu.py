"""On a GPU host: per-GPU metrics for every GPU, and a run that really uses one. Skipped without a GPU."""

import pytest

from engine import start
from engine.observe import nvml
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

    code = "import torch\nfrom engine.core.inference import sleep_while_waiting_for_gpu as s\n"
    code += "print(s())\ntorch.ones(1).cuda()"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90, check=True, cwd=root)
    assert out.stdout.split()[0] == "0"  # cudaSuccess
