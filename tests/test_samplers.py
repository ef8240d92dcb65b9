"""The host sampler's readings."""

import os
import time

import psutil

from engine.observe.samplers import HostReader


def test_host_cpu_is_measured_since_the_readers_own_last_reading():
    """Another psutil.cpu_percent(None) caller just before a reading leaves it a true figure, not 0 %."""
    reader = HostReader()
    busy_until = time.perf_counter() + 0.4
    while time.perf_counter() < busy_until:
        pass  # one core busy
    psutil.cpu_percent(interval=None)  # as a second sampler would, in the same process
    reading = reader.read()
    assert reading["cpu_pct"] >= 100 / (os.cpu_count() or 1) * 0.5 and reading["ram_used_bytes"] > 0
