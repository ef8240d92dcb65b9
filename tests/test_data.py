"""Data sources: deterministic synthetic images and blocks that hold whole batches."""

import numpy as np

from engine.config import RunConfig
from engine.data import rows_per_block, synthetic_image


def test_synthetic_images_are_deterministic_and_distinct():
    a, b = synthetic_image(5, 64), synthetic_image(6, 64)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, synthetic_image(5, 64)) and not np.array_equal(a, b)


def test_blocks_hold_whole_batches():
    # 16 MB of 224 px images is 111 images: with batch 32 that becomes 96 (3 batches).
    assert rows_per_block(RunConfig(batch_size=32, block_size_mb=16)) == 96
    # A block smaller than a batch divides it evenly: 256 = 4 blocks of 64.
    assert rows_per_block(RunConfig(batch_size=256, block_size_mb=16)) == 64
    assert rows_per_block(RunConfig(batch_size=7, block_size_mb=1, image_size=224)) == 1  # 7 is prime
