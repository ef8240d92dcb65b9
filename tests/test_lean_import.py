"""Contract: a worker builds and runs a model without importing torch._dynamo, and torchvision still works in full."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, why_it_failed

pytestmark = pytest.mark.subprocess

WORKER = """
import sys
from engine.execution.warm import prepare_worker
from engine.core.models import build_model
import torch

prepare_worker()
model, _ = build_model("resnet18")
model(torch.zeros(1, 3, 32, 32))
print("dynamo after a forward pass:", "torch._dynamo" in sys.modules)
roi_align = sys.modules["torchvision.ops.roi_align"]
print("compile supported on cpu:", roi_align.is_compile_supported("cpu"))
print("dynamo after roi_align's helper:", "torch._dynamo" in sys.modules)
print("torch.compile:", torch.compile(lambda x: x + 1, backend="eager")(torch.ones(1)).item())
"""

STAND_IN_OUTGROWN = """
import sys, types
from engine.core import lean_import

lean_import._stand_in = lambda: types.ModuleType(lean_import.DYNAMO_UTILS)  # lacks what roi_align imports
tv = lean_import.torchvision()
print("dynamo:", "torch._dynamo" in sys.modules)
print("resnet18 builds:", type(tv.models.resnet18()).__name__)
"""


def python(code: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, why_it_failed(result)
    return result.stdout.splitlines()


def test_a_worker_never_imports_the_compiler_and_torchvision_keeps_it_whole():
    assert python(WORKER) == [
        "dynamo after a forward pass: False",
        "compile supported on cpu: True",
        "dynamo after roi_align's helper: True",
        "torch.compile: 2.0",
    ]


def test_a_torchvision_that_needs_more_of_the_compiler_is_imported_plainly():
    assert python(STAND_IN_OUTGROWN) == ["dynamo: True", "resnet18 builds: ResNet"]
