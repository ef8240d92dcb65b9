"""Data sources: deterministic synthetic images and blocks that hold whole batches."""

import numpy as np

from engine.core.config import RunConfig
from engine.core.data import rows_per_block, synthetic_image


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


def test_synthetic_blocks_hold_exactly_rows_per_block_images(ray_local):
    """Every block but the last is full, so no batch of the model stage is stitched from two blocks."""
    from engine.core.data import build_dataset, synthetic_blocks

    config = RunConfig(images=40, batch_size=2, block_size_mb=1)  # 6 images of 224 px fit 1 MB
    assert rows_per_block(config) == 6 and synthetic_blocks(config) == 6

    def describe(block):  # a closure, so Ray pickles it by value: the workers cannot import tests/
        pairs = zip(block["key"], block["image"], strict=True)
        same = all(np.array_equal(img, synthetic_image(int(k), 224)) for k, img in pairs)
        return {"first": [int(block["key"][0])], "rows": [len(block["key"])], "same": [same]}

    got = sorted(build_dataset(config).map_batches(describe, batch_size=None).take_all(), key=lambda r: r["first"])
    assert [(r["first"], r["rows"]) for r in got] == [(i, 6) for i in range(0, 36, 6)] + [(36, 4)]
    assert all(r["same"] for r in got)


def test_block_count_is_exact_when_ray_can_split_that_way():
    """Ray's range makes blocks of images // count ids: 300,000 images of batch 256 need 1,171 (+ the rest)."""
    from engine.core.data import synthetic_blocks

    assert synthetic_blocks(RunConfig(images=300_000, batch_size=256, block_size_mb=64)) == 1171
    assert 300_000 // 1171 == 256  # blocks of 255 (the count images / 256 rounded up) would stitch every batch
    # No exact count for 256 images in blocks of 96: three smaller blocks, as before.
    assert synthetic_blocks(RunConfig(images=256, batch_size=32, block_size_mb=16)) == 3
