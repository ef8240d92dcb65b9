"""What one fresh GPU process pays before its first batch: torch import, CUDA start, model build, first forward.

    python -m bench.fresh_process

Prints one line of seconds per phase, for ResNet-50 bf16 at batch 256 with cuDNN
autotuning on, as the engine's Predictor runs it. Run it twice: the first run also
reads the libraries from disk. Each Ray worker imports torch in the engine's worker
set-up hook, so the import is what a worker costs to start.
"""

import sys
import time

T0 = time.perf_counter()

import torch  # noqa: E402 - the import is what is timed
import torchvision  # noqa: E402


def main() -> None:
    imported = time.perf_counter()
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU: this probe times a GPU process's start")
    torch.zeros(1).cuda()
    torch.cuda.synchronize()
    cuda = time.perf_counter()
    torch.backends.cudnn.benchmark = True
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
    print(
        f"fresh process: import {imported - T0:.2f}s cuda_init {cuda - imported:.2f}s model {built - cuda:.2f}s "
        f"first_forward {first - built:.2f}s second {second - first:.3f}s"
    )


if __name__ == "__main__":
    main()
