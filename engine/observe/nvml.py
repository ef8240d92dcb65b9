"""Every call into NVML (the `pynvml` module of nvidia-ml-py) lives here.

A value NVML cannot give is `None` ("not available"), never a fake zero, and a
machine with no NVIDIA driver or GPU yields no readings at all.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    util_pct: float | None
    mem_used_bytes: int | None
    mem_total_bytes: int | None
    jpeg_util_pct: float | None = None  # the hardware JPEG decoders' (NVJPG); None on GPUs without them


_lock = threading.Lock()
_state: dict[str, object] = {"ready": None, "why": ""}


def _init() -> bool:
    """Initialise NVML once; remember why it failed so the UI can say so."""
    with _lock:
        if _state["ready"] is None:
            try:
                import pynvml

                pynvml.nvmlInit()
                _state["ready"] = pynvml.nvmlDeviceGetCount() > 0
                if not _state["ready"]:
                    _state["why"] = "NVML found no GPU"
            except Exception as exc:  # no library, no driver, or no device
                _state["ready"] = False
                _state["why"] = f"no NVIDIA GPU ({str(exc) or type(exc).__name__})"  # NVML's words, not its class
        return bool(_state["ready"])


def unavailable_reason() -> str | None:
    """None when GPUs can be read; otherwise a short reason for the UI."""
    return None if _init() else str(_state["why"])


def _field(read, handle):
    import pynvml

    try:
        return read(handle)
    except pynvml.NVMLError as exc:
        log.debug("NVML field unavailable: %s", exc)
        return None


def _jpeg_util(handle) -> float | None:
    """Utilisation of the GPU's JPEG engines; NotSupported (None) on GPUs without them, as in bindings without it."""
    import pynvml

    read = getattr(pynvml, "nvmlDeviceGetJpgUtilization", None)
    reading = None if read is None else _field(read, handle)
    return None if reading is None else float(reading[0])


def has_jpeg_engines(pci_bus_id: str) -> bool:
    """Whether the GPU at this PCI address (DOMAIN:BUS:DEVICE.0) has hardware JPEG decoders NVML can read."""
    if not _init():
        return False
    import pynvml

    try:
        handle = pynvml.nvmlDeviceGetHandleByPciBusId(pci_bus_id)
    except pynvml.NVMLError as exc:
        log.debug("no GPU at %s: %s", pci_bus_id, exc)
        return False
    return _jpeg_util(handle) is not None


def read_gpus() -> list[GpuReading]:
    """One reading per local GPU; an empty list when there is no NVIDIA GPU."""
    if not _init():
        return []
    import pynvml

    readings = []
    try:
        count = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError as exc:
        log.warning("NVML lost its GPUs: %s", exc)
        return []
    for index in range(count):
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except pynvml.NVMLError as exc:
            log.warning("GPU %d unreadable: %s", index, exc)
            continue
        util = _field(pynvml.nvmlDeviceGetUtilizationRates, handle)
        mem = _field(pynvml.nvmlDeviceGetMemoryInfo, handle)
        name = _field(pynvml.nvmlDeviceGetName, handle) or f"GPU {index}"
        readings.append(
            GpuReading(
                index=index,
                name=name.decode() if isinstance(name, bytes) else str(name),
                util_pct=None if util is None else float(util.gpu),
                mem_used_bytes=None if mem is None else int(mem.used),
                mem_total_bytes=None if mem is None else int(mem.total),
                jpeg_util_pct=_jpeg_util(handle),
            )
        )
    return readings
