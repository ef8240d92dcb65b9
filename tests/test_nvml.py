"""NVML readings with a fake pynvml: no driver, unsupported fields, and real values."""

import sys
import types

import pytest

from engine.observe import nvml


class NVMLError(Exception):
    pass


def fake_pynvml(count=2, util_supported=True, init_fails=False, jpeg_engines=()):
    """`jpeg_engines`: the indices of GPUs with hardware JPEG decoders; NVML says NotSupported for the others."""
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

    def jpeg(handle):
        if handle not in jpeg_engines:
            raise NVMLError("Not Supported")
        return [12 + handle, 166666]  # (utilisation %, sampling period in µs)

    def by_bus_id(bus_id):
        if not bus_id.startswith("00000000:"):
            raise NVMLError("Not Found")
        return int(bus_id.split(":")[1], 16)

    mod.nvmlDeviceGetJpgUtilization = jpeg
    mod.nvmlDeviceGetHandleByPciBusId = by_bus_id
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


@pytest.mark.skipif(bool(nvml.read_gpus()), reason="this machine has an NVIDIA GPU")
def test_without_nvidias_library_the_reason_is_nvmls_own_words(monkeypatch):
    monkeypatch.setattr(nvml, "_state", {"ready": None, "why": ""})  # the real pynvml, asked afresh
    assert nvml.read_gpus() == []
    why = nvml.unavailable_reason()  # here "no NVIDIA GPU (NVML Shared Library Not Found)"
    assert why == "NVML found no GPU" or (why.startswith("no NVIDIA GPU (") and "NVMLError" not in why), why


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


def test_jpeg_engine_utilisation_is_read_where_the_gpu_has_them_and_none_elsewhere(use):
    use(fake_pynvml(count=2, jpeg_engines=(1,)))
    assert [g.jpeg_util_pct for g in nvml.read_gpus()] == [None, 13.0]
    assert nvml.has_jpeg_engines("00000000:01:00.0") and not nvml.has_jpeg_engines("00000000:00:00.0")
    assert not nvml.has_jpeg_engines("0001:99:00.0")  # no such GPU


def test_bindings_without_jpeg_utilisation_read_none(use):
    mod = fake_pynvml(count=1, jpeg_engines=(0,))
    del mod.nvmlDeviceGetJpgUtilization
    use(mod)
    assert nvml.read_gpus()[0].jpeg_util_pct is None and not nvml.has_jpeg_engines("00000000:00:00.0")


def test_no_driver_means_no_jpeg_engines(use):
    use(fake_pynvml(init_fails=True))
    assert not nvml.has_jpeg_engines("00000000:00:00.0")
