"""What one fresh GPU process pays before its first batch: torch import, CUDA start, model build, first forward.

    python -m bench.fresh_process [--cudnn-benchmark on|off]

Prints one line of seconds per phase, for ResNet-50 bf16 at batch 256 as the engine's
Predictor runs it (cuDNN autotuning on unless `off`), then the steady img/s of 30 more
forward passes, so the autotuning's cost at start can be set against what it gains. Run it twice: the first run also
reads the libraries from disk. Each Ray worker imports torch in the engine's worker
set-up hook, so the import is what a worker costs to start.
"""

import sys
import time

T0 = time.perf_counter()

import torch  # noqa: E402 - the import is what is timed

from engine.core.lean_import import torchvision as import_torchvision  # noqa: E402

torchvision = import_torchvision()  # as the engine's workers import it


def main() -> None:
    autotune = sys.argv[1:] != ["--cudnn-benchmark", "off"]
    if sys.argv[1:] not in ([], ["--cudnn-benchmark", "on"], ["--cudnn-benchmark", "off"]):
        sys.exit("usage: python -m bench.fresh_process [--cudnn-benchmark on|off]")
    imported = time.perf_counter()
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU: this probe times a GPU process's start")
    torch.zeros(1).cuda()
    torch.cuda.synchronize()
    cuda = time.perf_counter()
    torch.backends.cudnn.benchmark = autotune
    model = torchvision.models.resnet50().cuda().to(torch.bfloat16, memory_format=torch.channels_last).eval()
    x = torch.zeros(256, 3, 224, 224, device="cuda", dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
    built = time.perf_counter()
    with torch.inference_mode():
        model(x)
        torch.cuda.synchronize()
        first = time.perf_counter()
        model(x)
        torch.cuda.synchronize()
        second = time.perf_counter()
        for _ in range(30):
            model(x)
        torch.cuda.synchronize()
        steady = 30 * x.shape[0] / (time.perf_counter() - second)
    print(
        f"fresh process (cudnn benchmark {'on' if autotune else 'off'}): import {imported - T0:.2f}s "
        f"cuda_init {cuda - imported:.2f}s model {built - cuda:.2f}s first_forward {first - built:.2f}s "
        f"second {second - first:.3f}s steady {steady:,.0f} img/s"
    )


if __name__ == "__main__":
    main()
