"""Failures become one actionable line."""

from engine.config import RunConfig
from engine.errors import one_line


def test_innermost_cause_first_line():
    try:
        try:
            raise ValueError("bad weights\nlong traceback text")
        except ValueError as inner:
            raise RuntimeError("wrapper") from inner
    except RuntimeError as outer:
        assert one_line(outer) == "ValueError: bad weights"


def test_gpu_out_of_memory_suggests_smaller_batch():
    exc = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    text = one_line(exc, RunConfig(batch_size=4096))
    assert "batch size 4096" in text and "smaller batch" in text


def test_long_messages_are_cut():
    assert len(one_line(ValueError("x" * 5000))) <= 300
