"""The images a run reads: synthetic, cached JPEG files, or any folder/URI.

Every source yields the same columns: `image` (uint8, HxWx3, already at the
configured size) and `key` (a row id or a file path), so both pipelines and
every data source share one code path.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable

import numpy as np

from engine.core.config import BUILTIN_DATA, RunConfig
from engine.core.decode import CPU_DECODER, decodes_in_actors

log = logging.getLogger(__name__)

_TILE = 64  # extra pixels in the noise tile that images are cut from


def cache_dir() -> str:
    """Where the engine keeps files it generates (JPEGs, weights ceilings)."""
    root = os.environ.get("PLAYGROUND_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ray-batch-playground")
    os.makedirs(root, mode=0o700, exist_ok=True)  # the run store and its files are their owner's alone
    return root


def synthetic_image(key: int, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """The deterministic image with this id: a noise tile window, one channel halved by the id.

    With `out` (a (size, size, 3) uint8 view) the image is written there, so a block
    of images is filled in place instead of stacked from copies.
    """
    tile = _noise_tile(size)
    dy, dx = (key * 7) % _TILE, (key * 13) % _TILE
    image = np.empty((size, size, 3), np.uint8) if out is None else out
    image[...] = tile[dy : dy + size, dx : dx + size]
    channel = image[..., key % 3]
    np.right_shift(channel, 1, out=channel)
    return image


_tiles: dict[int, np.ndarray] = {}


def _noise_tile(size: int) -> np.ndarray:
    """Smooth colour waves plus grain: cheap to cut from, and it looks like a picture."""
    if size not in _tiles:
        rng = np.random.default_rng(size)
        n = size + _TILE
        y, x = np.mgrid[0:n, 0:n] / n * 2 * np.pi
        channels = [
            np.sin(x * rng.uniform(1, 4) + rng.uniform(0, 6)) * np.cos(y * rng.uniform(1, 4) + rng.uniform(0, 6))
            for _ in range(3)
        ]
        waves = (np.stack(channels, axis=-1) + 1) * 110
        grain = rng.normal(0, 12, (n, n, 3))
        _tiles[size] = np.clip(waves + grain + 10, 0, 255).astype(np.uint8)
    return _tiles[size]


def _make_images(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    keys = batch["id"]
    images = np.empty((len(keys), size, size, 3), np.uint8)
    for row, key in enumerate(keys):
        synthetic_image(int(key), size, images[row])
    return {"key": keys.astype(str), "image": images}


def rows_per_block(config: RunConfig) -> int:
    """How many images go in one block: as many as fit the configured size, in whole batches.

    Blocks that hold whole batches (or divide one evenly) keep every forward
    pass full-sized; 111-image blocks with batch 256 would give every other
    batch 77 images.
    """
    image_bytes = config.image_size * config.image_size * 3
    fit = max(1, (config.block_size_mb * 2**20) // image_bytes)
    batch = config.batch_size
    if fit >= batch:
        return fit // batch * batch
    return max(d for d in range(1, fit + 1) if batch % d == 0)


def synthetic_blocks(config: RunConfig) -> int:
    """The block count to give `ray.data.range` so that its blocks hold exactly `rows_per_block` ids.

    Ray's range makes blocks of `images // blocks` ids and one more for the rest, so
    `images // rows_per_block` blocks are exact whenever that division gives back
    rows_per_block (always past rows_per_block² images). Blocks of 255 ids with batch
    256 would make every batch a copy stitched from two blocks. Where no count is
    exact (a few blocks and a large rest), blocks are a little smaller than rows_per_block.
    """
    per_block = rows_per_block(config)
    full = config.images // per_block
    if full and config.images // full == per_block:
        return full
    return math.ceil(config.images / per_block)


PHOTO_SIDES = (300, 800)  # px: each side of a generated photo, drawn per file
PHOTO_BYTES = (65_000, 125_000)  # the file size each photo aims at: ImageNet's photos average about 110 KB
PHOTO_QUALITY = 90
# Bits per pixel of a generated photo at PHOTO_QUALITY against the grain's strength: measured, so a
# photo's grain can be chosen to land its file near its aimed size whatever its pixel count.
_GRAIN = np.array([0, 2, 4, 8, 16, 24, 32, 48, 64], np.float32)
_BITS_PER_PIXEL = np.array([0.99, 1.18, 1.56, 2.40, 3.63, 4.47, 5.05, 5.89, 6.50], np.float32)


def jpeg_dir(shape: tuple[int, int] | None = None, aim_bytes: int | None = None) -> str:
    """The folder of the "JPEG files" option's photos: one set, whatever size the model takes.

    A set of one `shape` (height, width) and file size (`aim_bytes`) has a folder of its own.
    """
    if shape is None and aim_bytes is None:
        return os.path.join(cache_dir(), "jpeg", "photos")
    height, width = shape or ("mixed", "mixed")
    return os.path.join(cache_dir(), "jpeg", f"photos-{height}x{width}-{aim_bytes or 'mixed'}b")


def ensure_jpegs(
    count: int,
    progress: Callable[[int, int], None] | None = None,
    shape: tuple[int, int] | None = None,
    aim_bytes: int | None = None,
) -> list[str]:
    """Write (once) and return `count` JPEG photos of mixed sizes, on every core.

    Each side is 300-800 px and each file 65-125 KB, drawn per file index, so a decoder meets
    the pixel counts and bytes of real photos; `shape` and `aim_bytes` fix them instead (see `photo`).
    Pillow encodes without the GIL, so a thread per core writes them in parallel; each file appears
    whole (written aside, then renamed).
    """
    from concurrent.futures import ThreadPoolExecutor

    folder = jpeg_dir(shape, aim_bytes)
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"img_{i:07d}.jpg") for i in range(count)]
    missing = [i for i, p in enumerate(paths) if not os.path.exists(p)]
    _photo_tiles()  # once, before the threads cut photos from them
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        written = pool.map(lambda i: _write_jpeg(paths[i], photo(i, shape, aim_bytes)), missing)
        for done, _ in enumerate(written, 1):
            if progress and (done % 50 == 0 or done == len(missing)):
                progress(done, len(missing))
    return paths


def _write_jpeg(path: str, pixels: np.ndarray) -> None:
    from PIL import Image

    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"  # two writers of one file never share a temporary
    Image.fromarray(pixels).save(tmp, format="JPEG", quality=PHOTO_QUALITY)
    os.replace(tmp, path)


def photo(key: int, shape: tuple[int, int] | None = None, aim_bytes: int | None = None) -> np.ndarray:
    """The generated photo with this index: a window of colour waves plus grain, its size and grain drawn by `key`.

    The grain sets how well the photo compresses: it is chosen from `_BITS_PER_PIXEL` so that the file
    lands near a size drawn from PHOTO_BYTES, however many pixels the photo has. `shape` (height, width,
    each at most PHOTO_SIDES' largest) and `aim_bytes` fix the size and the file size instead.
    """
    rng = np.random.default_rng(key)
    # drawn even where fixed, so the crop and colour drawn next are the same photo's either way
    height, width = (int(v) for v in rng.integers(PHOTO_SIDES[0], PHOTO_SIDES[1] + 1, 2))
    aim = rng.uniform(*PHOTO_BYTES)
    height, width = shape or (height, width)
    aim = aim_bytes or aim
    grain = float(np.interp(aim * 8 / (height * width), _BITS_PER_PIXEL, _GRAIN))
    waves, noise = _photo_tiles()
    span = len(waves)
    y, gy = (int(v) for v in rng.integers(0, span - height + 1, 2))
    x, gx = (int(v) for v in rng.integers(0, span - width + 1, 2))
    image = waves[y : y + height, x : x + width] + grain * noise[gy : gy + height, gx : gx + width]
    image[..., key % 3] *= 0.6 + 0.4 * rng.random()  # a colour cast of its own
    return np.clip(image, 0, 255).astype(np.uint8)


_photo: dict[str, np.ndarray] = {}


def _photo_tiles() -> tuple[np.ndarray, np.ndarray]:
    """Colour waves and unit grain, a little larger than the largest photo, that every photo is cut from."""
    if not _photo:
        rng = np.random.default_rng(0)
        n = PHOTO_SIDES[1] + _TILE
        y, x = np.mgrid[0:n, 0:n].astype(np.float32) / n * 2 * np.pi
        channels = [
            np.sin(x * rng.uniform(2, 9) + rng.uniform(0, 6)) * np.cos(y * rng.uniform(2, 9) + rng.uniform(0, 6))
            for _ in range(3)
        ]
        _photo["waves"] = (np.stack(channels, axis=-1) + 1) * 100 + 20
        _photo["noise"] = rng.normal(0, 1, (n, n, 3)).astype(np.float32)
    return _photo["waves"], _photo["noise"]


def count_inputs(config: RunConfig) -> int:
    """How many images the run goes through: the requested number, or fewer when its folder or URI holds fewer files.

    Counted by a listing (no file is read), the way Ray Data lists them: hidden ("." or "_") entries left out.
    A source that cannot be listed (http) counts as the requested number.
    """
    if config.data in BUILTIN_DATA:
        return config.images
    import pyarrow.fs as pafs

    try:
        if "://" in config.data:
            fs, root = pafs.FileSystem.from_uri(config.data)
        else:
            fs, root = pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(config.data))
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    except Exception as exc:  # a scheme pyarrow cannot list, or no access: the run itself will say more
        log.debug("could not list %s: %s", config.data, exc)
        return config.images
    files = sum(
        1 for i in infos if i.type == pafs.FileType.File and not os.path.relpath(i.path, root).startswith((".", "_"))
    )
    return min(config.images, files)


def build_dataset(config: RunConfig, progress: Callable[[int, int], None] | None = None, reporter=None, run_id=""):
    """The Ray Dataset of images for this run (lazy: nothing executes yet).

    Files are read as bytes and decoded in a map, so a corrupt or non-image
    file is skipped and reported (or fails the run, naming it) instead of
    failing deep inside a reader; where the model's actors decode them on
    their GPU (`decodes_in_actors`), the bytes go to the actors as they are.
    With `stages="cpu_preprocess"` the decode and resize is its own stage, with its own CPUs and concurrency; synthetic
    images are then generated at twice the size so that stage has real work.
    """
    import ray
    from ray.data import TaskPoolStrategy

    separate = config.stages == "cpu_preprocess"
    stage_args = (
        {"num_cpus": config.preprocess_cpus, "compute": TaskPoolStrategy(size=config.preprocess_concurrency)}
        if separate
        else {}
    )
    if config.data == "synthetic":
        made = config.image_size * (2 if separate else 1)
        ds = ray.data.range(config.images, override_num_blocks=synthetic_blocks(config))
        ds = ds.map_batches(_make_images, fn_kwargs={"size": made}, batch_size=None)
        if separate:
            ds = ds.map_batches(resize_images, fn_kwargs={"size": config.image_size}, batch_size=None, **stage_args)
        return ds
    if config.data == "jpeg":
        source = ensure_jpegs(config.images, progress)
    else:
        source = os.path.abspath(os.path.expanduser(config.data))
    ds = ray.data.read_binary_files(source, include_paths=True, ignore_missing_paths=False).limit(config.images)
    if decodes_in_actors(config):
        return ds  # the model's actors decode the bytes on their device (engine.core.decode)
    return ds.map_batches(
        decode_images,
        fn_kwargs={
            "size": config.image_size,
            "skip_bad": config.on_bad_file == "skip",
            "reporter": reporter,
            "run_id": run_id,
        },
        batch_size=None,
        **stage_args,
    )


def resize_images(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """The CPU pre-processing stage on synthetic images: resize each to the model's input size."""
    from PIL import Image

    images = [np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR)) for img in batch["image"]]
    return {"key": batch["key"], "image": np.stack(images)}


def decode_images(batch: dict[str, np.ndarray], size: int, skip_bad: bool, reporter, run_id: str) -> dict:
    """Decode and resize image files; a file that is not a readable image is skipped and named, or fails the run."""
    import io

    from PIL import Image

    keys, images, bad = [], [], []
    started = time.perf_counter()
    for path, data in zip(batch["path"], batch["bytes"], strict=True):
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.draft("RGB", (size, size))  # JPEG: decode at reduced scale when it can
                images.append(np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR)))
            keys.append(path)
        except Exception as exc:
            if not skip_bad:
                raise ValueError(f"not a readable image: {path} ({type(exc).__name__})") from None
            bad.append(str(path))
    if reporter is not None:
        from engine.execution.reporter import ReportClient

        client = ReportClient(reporter, run_id)
        client.send("images_decoded", CPU_DECODER, 0, len(images), time.perf_counter() - started, None)
        if bad:
            client.send("files_skipped", bad)
    empty = np.zeros((0, size, size, 3), dtype=np.uint8)
    return {"key": np.array(keys, dtype=object), "image": np.stack(images) if images else empty}


def load_image(config: RunConfig, key: str) -> np.ndarray:
    """The input image behind a prediction's key, for showing samples."""
    from PIL import Image

    if config.data == "synthetic":
        if config.stages != "cpu_preprocess":
            return synthetic_image(int(key), config.image_size)
        large = synthetic_image(int(key), config.image_size * 2)
        return resize_images({"key": [key], "image": [large]}, config.image_size)["image"][0]
    path = key
    if config.data == "jpeg":
        path = os.path.join(jpeg_dir(), os.path.basename(key))
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB").resize((config.image_size, config.image_size)))
