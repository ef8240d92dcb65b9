"""NVML readings with a fake pynvml: no driver, unsupported fields, and real values."""

import sys
import types

import pytest

from engine.observe import nvml


class NVMLError(Exception):
    pass


def fake_pynvml(count=2, util_supported=True, init_fails=False):
    mod = types.ModuleType("pynvml")
    mod.NVMLError = NVMLError

    def init():
        if init_fails:
            raise NVMLError("Driver Not Loaded")

    def util(handle):
        if not util_supported:
            raise NVMLError("Not Supported")
        return types.SimpleNamespace(gpu=40 + handle)

    mod.nvmlInit = init
    mod.nvmlDeviceGetCount = lambda: count
    mod.nvmlDeviceGetHandleByIndex = lambda i: i
    mod.nvmlDeviceGetUtilizationRates = util
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=(h + 1) * 2**30, total=80 * 2**30)
    mod.nvmlDeviceGetName = lambda h: b"NVIDIA H100"
    return mod


@pytest.fixture
def use(monkeypatch):
    def install(mod):
        monkeypatch.setitem(sys.modules, "pynvml", mod)
        monkeypatch.setattr(nvml, "_state", {"ready": None, "why": ""})

    return install


def test_no_driver_means_no_readings_and_a_reason(use):
    use(fake_pynvml(init_fails=True))
    assert nvml.read_gpus() == []
    assert nvml.unavailable_reason().startswith("no NVIDIA GPU")


def test_zero_gpus_is_not_a_gpu(use):
    use(fake_pynvml(count=0))
    assert nvml.read_gpus() == []
    assert nvml.unavailable_reason() == "NVML found no GPU"


def test_readings_per_gpu(use):
    use(fake_pynvml(count=2))
    gpus = nvml.read_gpus()
    assert [g.util_pct for g in gpus] == [40.0, 41.0]
    assert gpus[1].mem_used_bytes == 2 * 2**30 and gpus[0].name == "NVIDIA H100"
    assert nvml.unavailable_reason() is None


def test_unsupported_field_is_none_not_zero(use):
    use(fake_pynvml(count=1, util_supported=False))
    (gpu,) = nvml.read_gpus()
    assert gpu.util_pct is None and gpu.mem_used_bytes == 2**30
