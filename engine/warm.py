"""Worker set-up hook: every Ray worker imports torch and torchvision as it starts.

Ray runs this in each worker process before any task, so the import cost is paid
while workers idle in the pool rather than after the user presses Launch.
"""

from __future__ import annotations


def prepare_worker() -> None:
    import torch  # noqa: F401
    import torchvision.models  # noqa: F401
