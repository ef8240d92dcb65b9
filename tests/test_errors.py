"""Failures become one actionable line."""

from engine.core.config import RunConfig
from engine.core.errors import one_line


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


def test_ray_data_internal_errors_keep_their_own_message():
    from ray.data.exceptions import SystemException

    try:
        raise RuntimeError("Ray has not been started yet") from SystemException()  # how Ray Data re-raises them
    except RuntimeError as exc:
        assert one_line(exc) == "RuntimeError: Ray has not been started yet"


def test_a_full_disk_names_the_output_folder_without_ray_data_retry_advice():
    exc = OSError(28, "Error writing bytes to file. Detail: [errno 28] No space left on device", "retry advice\n...")
    assert one_line(exc, RunConfig(output="/data/out")) == (
        "No space left on device writing to /data/out: free some space or choose another folder"
    )


def test_ray_colour_codes_are_dropped():
    assert one_line(ValueError("\x1b[36mray::MapWorker\x1b[39m died")) == "ValueError: ray::MapWorker died"
