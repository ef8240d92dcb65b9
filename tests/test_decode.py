"""Where files are decoded, the in-actor batch decoder and its fallbacks, the generated photos, and runs of both paths.

The decoder's logic runs on the CPU with an injected batch function standing in for the GPU's; the
`gpu` tests at the end run the real thing on an NVIDIA GPU and are skipped without one.
"""

import io
import json
import os
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from engine.core.config import ConfigError, RunConfig
from engine.core.decode import (
    CPU_DECODER,
    DEFAULT_MIX,
    NVIMGCODEC_MIXES,
    BatchDecoder,
    decodes_in_actors,
    is_jpeg,
    nvimgcodec_backends,
    resize_batch,
)
from engine.observe import nvml
from tests.conftest import finish

# torchvision's decoders warn that TorchCodec supersedes them; the suite turns deprecations into errors.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torchvision.io.image")

NO_GPU = not nvml.read_gpus()
SIZE = 32


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def picture(width: int = 60, height: int = 45, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), np.uint8))


def mixed_files() -> dict[str, bytes]:
    """Every kind of file a folder of images holds: JPEGs of three kinds, other formats, and two bad files."""
    jpeg = encode(picture(), "JPEG")
    return {
        "photo.jpg": jpeg,
        "small.jpg": encode(picture(40, 30, 1), "JPEG"),
        "gray.jpg": encode(picture().convert("L"), "JPEG"),
        "cmyk.jpg": encode(picture().convert("CMYK"), "JPEG"),
        "flat.png": encode(picture(seed=2), "PNG"),
        "alpha.png": encode(picture(seed=3).convert("RGBA"), "PNG"),
        "anim.gif": encode(picture(seed=4), "GIF"),
        "cut.jpg": jpeg[:100],  # the header alone: no decoder can read it
        "notes.txt": b"not an image",
    }


BAD = ["cut.jpg", "notes.txt"]


@pytest.fixture
def mixed_folder(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name, data in mixed_files().items():
        (folder / name).write_bytes(data)
    return folder


# --- where decoding happens ------------------------------------------------------------------
@pytest.mark.parametrize(
    "settings, in_actors",
    [
        ({"decode": "auto", "num_gpus": 0.25, "data": "jpeg"}, True),  # GPU actors and files: on the GPU
        ({"decode": "auto", "num_gpus": 0.0, "data": "jpeg"}, False),  # CPU actors: PIL in the read tasks
        ({"decode": "auto", "num_gpus": 1.0, "data": "synthetic"}, False),  # nothing to decode
        ({"decode": "cpu", "num_gpus": 1.0, "data": "jpeg"}, False),
        ({"decode": "gpu", "num_gpus": 1.0, "data": "jpeg"}, True),
        ({"decode": "gpu", "num_gpus": 0.0, "data": "jpeg"}, True),  # in the actors, on whatever device they have
        ({"decode": "auto", "num_gpus": 1.0, "data": "jpeg", "pipeline": "naive"}, False),
        ({"decode": "auto", "num_gpus": 1.0, "data": "jpeg", "stages": "cpu_preprocess"}, False),
    ],
)
def test_decode_placement(settings, in_actors):
    assert decodes_in_actors(RunConfig(**settings)) is in_actors


@pytest.mark.parametrize(
    "settings, says",
    [
        ({"decode": "tpu"}, "decode must be one of cpu, gpu, auto (got 'tpu')"),
        ({"decode": "gpu", "pipeline": "naive"}, "decode gpu needs the actor pipeline"),
        ({"decode": "gpu", "stages": "cpu_preprocess"}, "decode gpu leaves the cpu_preprocess stage nothing to do"),
    ],
)
def test_decode_is_validated_in_one_line(settings, says):
    with pytest.raises(ConfigError, match=re.escape(says)) as refused:
        RunConfig(**settings).validate()
    assert "\n" not in str(refused.value)
    assert RunConfig(decode="gpu").validate().decode == "gpu" and RunConfig().decode == "auto"


def test_jpeg_is_told_by_its_magic_bytes_not_its_name():
    files = mixed_files()
    assert [name for name, data in files.items() if is_jpeg(data)] == [
        "photo.jpg", "small.jpg", "gray.jpg", "cmyk.jpg", "cut.jpg"
    ]  # fmt: skip
    assert not is_jpeg(b"") and not is_jpeg(b"\xff\xd8")


# --- the batch decoder, on a fake device -------------------------------------------------------
def fake_gpu(fails_batch: bool, calls: list):
    """A batch function standing in for the GPU's: PIL underneath, but it cannot read CMYK or cut files.

    Like torchvision's it fails a whole batch with one bad file (`fails_batch`); like nvImageCodec's
    it returns None for that file.
    """

    def decode(blobs):
        calls.append(len(blobs))
        out = []
        for blob in blobs:
            try:
                with Image.open(io.BytesIO(blob)) as img:
                    if img.mode == "CMYK":
                        raise ValueError("unsupported colour space")
                    out.append(torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1))
            except Exception:
                if fails_batch:
                    raise
                out.append(None)
        return out

    return decode


@pytest.mark.parametrize("fails_batch", [True, False], ids=["whole-batch-fails", "none-per-file"])
def test_a_bad_file_is_found_then_falls_back_to_pil_then_is_skipped(fails_batch):
    files = mixed_files()
    calls: list[int] = []
    decoder = BatchDecoder("fake GPU", torch.device("cpu"), SIZE, fake_gpu(fails_batch, calls), gpu=True)
    out = decoder(list(files), list(files.values()))
    assert sorted(out.keys) == sorted(set(files) - set(BAD))
    assert [path for path, _ in out.bad] == BAD and all(why for _, why in out.bad)
    assert out.on_gpu == 3  # photo, small and gray JPEGs on the "device"
    assert out.on_cpu == 4  # the CMYK JPEG it cannot read, and the PNGs and the GIF, by PIL
    assert out.images.shape == (7, 3, SIZE, SIZE) and out.images.dtype == torch.float32
    # One batch of the five JPEGs; where it fails as a whole, each again on its own to find the bad ones.
    assert calls == ([5, 1, 1, 1, 1, 1] if fails_batch else [5])


def test_each_row_is_the_image_of_its_key():
    """Images are grouped by size for the resize; the keys follow them."""
    colours = {f"{i}.jpg": (i * 40, 255 - i * 40, 90) for i in range(5)}
    sizes = [(60, 45), (40, 30), (60, 45), (SIZE, SIZE), (40, 30)]
    blobs = [encode(Image.new("RGB", size, colour), "JPEG", quality=100)
             for size, colour in zip(sizes, colours.values(), strict=True)]  # fmt: skip
    out = BatchDecoder("fake GPU", torch.device("cpu"), SIZE, fake_gpu(True, []))(list(colours), blobs)
    for row, key in enumerate(out.keys):
        mean = out.images[row].mean(dim=(1, 2)).tolist()
        assert np.allclose(mean, colours[key], atol=3), (key, mean)
    assert out.on_gpu == 0 and out.on_cpu == 5  # a CPU device decoded them all: none counts as GPU work


def test_resize_makes_the_models_size_from_any_size():
    images = [torch.full((3, h, w), 100, dtype=torch.uint8) for h, w in ((375, 500), (SIZE, SIZE), (500, 375))]
    batch = resize_batch(images, SIZE, torch.device("cpu"))
    assert batch.shape == (3, 3, SIZE, SIZE)
    assert torch.allclose(batch, torch.tensor(100.0))  # bilinear keeps a flat image flat: no ringing, no offset
    gradient = torch.arange(SIZE, dtype=torch.uint8).repeat(3, SIZE, 1)
    assert torch.equal(resize_batch([gradient], SIZE, torch.device("cpu"))[0], gradient.float())  # already sized
    assert resize_batch([], SIZE, torch.device("cpu")).shape == (0, 3, SIZE, SIZE)


def test_one_batched_resize_samples_each_image_as_interpolate_does_whatever_its_layout():
    generator = torch.Generator().manual_seed(0)

    def noise(*shape):
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)

    images = [
        noise(375, 500, 3).permute(2, 0, 1),  # interleaved RGB, as the GPU decoders give it
        noise(3, 500, 375),  # planar, as torchvision's decoder gives it
        noise(3, 90, 120)[:, 5:70, 10:110],  # a crop of a larger image
        noise(300, 512 * 3)[:, : 400 * 3].view(300, 400, 3).permute(2, 0, 1),  # rows padded to a pitch
        noise(20, 30, 3).permute(2, 0, 1),  # smaller than the model's size: enlarged
        noise(1, 7, 3).permute(2, 0, 1),
    ]
    batch = resize_batch(images, SIZE, torch.device("cpu"))
    for row, image in enumerate(images):  # input order, row for row
        expected = F.interpolate(image[None].float(), size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0]
        assert torch.allclose(batch[row], expected, atol=0.01), (row, (batch[row] - expected).abs().max())


def test_the_cpu_device_decoder_is_torchvision_and_says_so():
    decoder = BatchDecoder.for_device(torch.device("cpu"), SIZE)
    files = mixed_files()
    out = decoder(list(files), list(files.values()))
    assert decoder.name == "torchvision (CPU)" and not decoder.gpu
    assert sorted(out.keys) == sorted(set(files) - set(BAD)) and out.on_gpu == 0 and out.on_cpu == 7


def test_an_unknown_decoder_name_is_named_in_the_log_and_the_default_decodes(monkeypatch):
    from engine.core import decode

    said = []
    monkeypatch.setattr(decode.log, "warning", lambda message, *args: said.append(message % args))
    decoder = BatchDecoder.for_device(torch.device("cpu"), SIZE, "nvimgcodec-hw+cdua")
    assert decoder.name == "torchvision (CPU)"
    assert len(said) == 1 and said[0].startswith("PLAYGROUND_GPU_DECODER=nvimgcodec-hw+cdua is not torchvision or")


def test_each_nvimgcodec_mix_builds_its_backends_in_order_and_only_a_split_adapts():
    """nvImageCodec's backend objects need no GPU; a typo in a kind or a policy fails here, not on a GPU host."""
    nvimgcodec = pytest.importorskip("nvidia.nvimgcodec")
    for name, (_, mix) in NVIMGCODEC_MIXES.items():
        backends = nvimgcodec_backends(mix)
        assert [b.backend_kind.name for b in backends] == [kind for kind, _ in mix], name
        adaptive = {b.load_hint_policy == nvimgcodec.LoadHintPolicy.ADAPTIVE_MINIMIZE_IDLE_TIME for b in backends}
        assert adaptive == {mix[0][1] < 1}, name
    assert NVIMGCODEC_MIXES[DEFAULT_MIX][0] == "hardware"


def test_the_actor_decodes_bytes_and_refuses_or_skips_a_bad_file():
    """The Predictor as an actor runs it, without Ray: bytes in, labels out; a bad file fails only when told to."""
    from engine.core.inference import Predictor

    files = mixed_files()
    batch = {"path": np.array(list(files), dtype=object), "bytes": np.array(list(files.values()), dtype=object)}
    actor = Predictor("resnet18", None, "fp32", decode_size=SIZE)
    result = actor(batch)
    assert sorted(result["key"]) == sorted(set(files) - set(BAD)) and len(result["label_index"]) == 7
    actor.emit_logits = True  # the first stage of an ensemble hands its decoded images to the second
    first = actor(batch)
    assert first["image"].shape == (7, SIZE, SIZE, 3) and first["image"].dtype == np.uint8
    assert list(first["key"]) == list(result["key"]) and first["logits"].shape == (7, 1000)
    actor.skip_bad = False
    with pytest.raises(ValueError, match=r"^not a readable image: cut\.jpg \("):
        actor(batch)


# --- generated photos ------------------------------------------------------------------------
def test_generated_photos_have_realistic_sizes_and_never_change(tmp_path, monkeypatch):
    from engine.core import data

    monkeypatch.setenv("PLAYGROUND_CACHE", str(tmp_path))
    seen = []
    paths = data.ensure_jpegs(12, lambda done, total: seen.append((done, total)))
    assert seen[-1] == (12, 12) and os.path.dirname(paths[0]) == data.jpeg_dir()
    for path in paths:
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            assert all(300 <= side <= 800 for side in img.size), img.size
        assert 50_000 <= os.path.getsize(path) <= 150_000, os.path.getsize(path)  # aimed at 65-125 KB
    assert len({data.photo(i).shape for i in range(12)}) > 6  # mixed sizes
    before = [os.path.getmtime(p) for p in paths]
    assert data.ensure_jpegs(12) == paths and [os.path.getmtime(p) for p in paths] == before  # written once
    assert np.array_equal(data.photo(3), data.photo(3)) and data.photo(3).shape != data.photo(4).shape
    assert not [n for n in os.listdir(data.jpeg_dir()) if n.endswith(".tmp")]
    shown = data.load_image(RunConfig(data="jpeg", image_size=SIZE), paths[0])
    assert shown.shape == (SIZE, SIZE, 3)
    fixed = data.ensure_jpegs(3, shape=(375, 500), aim_bytes=50_000)  # a set of one size, in a folder of its own
    assert os.path.dirname(fixed[0]) == data.jpeg_dir((375, 500), 50_000) != data.jpeg_dir()
    for path in fixed:
        with Image.open(path) as img:
            assert img.size == (500, 375)
        assert 35_000 <= os.path.getsize(path) <= 65_000, os.path.getsize(path)


# --- what a run reports ----------------------------------------------------------------------
def test_the_summary_and_the_cli_line_name_the_decoder():
    from engine.cli.output import human
    from engine.insight.summary import decode_figures

    reported = {"decoders": ["nvimgcodec (hardware)"], "decoded_on_gpu": 90, "decoded_on_cpu": 4,
                "decode_seconds": 1.5, "actor_decode_seconds": 1.5, "actor_call_seconds": 6.0}  # fmt: skip
    figures = decode_figures(reported)
    assert figures == {"decoder": "nvimgcodec (hardware)", "decoded_on_gpu": 90, "decoded_on_cpu": 4,
                       "decode_seconds": 1.5, "decode_share": 0.25}  # fmt: skip
    nothing = decode_figures({})
    assert nothing["decoder"] is None and nothing["decode_share"] is None and nothing["decoded_on_gpu"] == 0
    summary = {"status": "finished", "pipeline": "actor", "model": "resnet18", "weights": "random", "rows": 94,
               "images": 96, "seconds": 2.0, "images_per_sec": 47.0, "model_loads": 1, **figures}  # fmt: skip
    line = human(summary)
    assert "decoded by nvimgcodec (hardware) (90 on the GPU, 4 on the CPU; 25% of the actors' time)" in line
    assert "\n" not in line
    assert "decoded" not in human({**summary, **nothing})


def test_the_cli_passes_decode_through():
    from engine.cli.parser import build_parser
    from engine.cli.runs import config_from
    from engine.core.defaults import Machine

    args = build_parser().parse_args(["run", "--data", "jpeg", "--decode", "cpu", "--images", "8", "--num-gpus", "0"])
    assert config_from(args, Machine(), pipeline="actor").decode == "cpu"
    args = build_parser().parse_args(["run", "--decode", "fpga", "--num-gpus", "0"])
    with pytest.raises(ConfigError, match="decode must be one of"):
        config_from(args, Machine(), pipeline="actor")


def test_anatomy_says_where_files_are_decoded():
    from engine.insight.anatomy import decode_placement

    on_gpu = decode_placement(RunConfig(data="jpeg", num_gpus=0.25))
    assert on_gpu.startswith("JPEG files are decoded on the GPU inside the model's actors (")
    assert decode_placement(RunConfig(data="jpeg")).startswith("JPEG files are decoded on the CPU in the read tasks")
    staged = decode_placement(RunConfig(data="jpeg", num_gpus=1, stages="cpu_preprocess"))
    assert "on the CPU in the pre-processing stage's tasks" in staged
    assert decode_placement(RunConfig(num_gpus=1)).startswith("Synthetic images need no decoding; with these")


def test_the_gpu_chart_draws_jpeg_engines_only_where_they_were_read():
    from ui.charts import gpu_util

    def point(t, jpeg):
        return {"t": t, "gpus": [{"index": 0, "node": "n", "util_pct": 80.0, "jpeg_util_pct": jpeg},
                                 {"index": 1, "node": "n", "util_pct": 70.0, "jpeg_util_pct": None}]}  # fmt: skip

    fig = gpu_util([point(0, 30.0), point(1, 45.0)])
    assert [t.name for t in fig.data] == ["GPU 0", "GPU 0 JPEG engines", "GPU 1"]
    assert fig.data[1].line.dash == "dash" and fig.data[1].line.color == fig.data[0].line.color
    assert list(fig.data[1].y) == [30.0, 45.0]
    assert [t.name for t in gpu_util([point(0, None)]).data] == ["GPU 0", "GPU 1"]


@pytest.mark.app
def test_the_decode_control_shows_only_with_a_gpu_and_reaches_the_config(monkeypatch):
    import sys

    from streamlit.testing.v1 import AppTest

    # The script runner makes its script __main__; a process spawned later would run it again on start.
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])

    def page(gpus: float) -> None:
        import streamlit as st

        from engine.core.defaults import Machine
        from ui.controls import run_controls

        st.session_state["config"] = run_controls(Machine(gpus=gpus, cpus=8.0))

    with_gpu = AppTest.from_function(page, args=(1.0,), default_timeout=60).run()
    (radio,) = [r for r in with_gpu.radio if r.label == "Decode on"]
    assert radio.options == ["CPU", "GPU", "auto"] and radio.value == "auto"
    assert with_gpu.session_state["config"].decode == "auto"
    radio.set_value("GPU").run()
    assert with_gpu.session_state["config"].decode == "gpu"
    without = AppTest.from_function(page, args=(0.0,), default_timeout=60).run()
    assert "Decode on" not in [r.label for r in without.radio] and without.session_state["config"].decode == "auto"


# --- runs through Ray on the CPU ---------------------------------------------------------------
def decoded_right(summary: dict, decoder: str) -> None:
    assert summary["status"] == "finished", summary["error"]
    assert summary["rows"] == 7 and summary["skipped_files"] == 2
    assert sorted(os.path.basename(n) for n in summary["skipped_names"]) == BAD
    assert summary["decoder"] == decoder
    assert summary["decoded_on_gpu"] + summary["decoded_on_cpu"] == 7  # every other file classified


def test_a_mixed_folder_decodes_on_the_cpu_by_default_here(ray_local, tiny, mixed_folder):
    summary = finish(ray_local.submit(tiny.replace(data=str(mixed_folder), images=100)))
    decoded_right(summary, CPU_DECODER)
    assert summary["decoded_on_cpu"] == 7 and summary["decode_share"] is None  # decoded in read tasks, not actors


def test_a_mixed_folder_decodes_inside_the_actors_when_asked(ray_local, tiny, mixed_folder):
    """decode="gpu" on CPU actors: the in-actor path, on the device they have, which the summary names."""
    summary = finish(ray_local.submit(tiny.replace(data=str(mixed_folder), images=100, decode="gpu")))
    decoded_right(summary, "torchvision (CPU)")
    assert 0 < summary["decode_share"] < 1
    assert "MapBatches(decode_images)" not in summary["plan"]  # bytes go to the actors as they are
    failed = finish(ray_local.submit(tiny.replace(data=str(mixed_folder), decode="gpu", on_bad_file="fail")))
    assert failed["status"] == "failed" and failed["error"].startswith("ValueError: not a readable image: ")


@pytest.mark.slow
@pytest.mark.subprocess  # the DataLoader cases' worker processes
def test_the_benchmarks_jpeg_cases_run_on_a_cpu(ray_local, tmp_path, monkeypatch):
    """The smoke of every JPEG case, end to end: on a CPU each decodes there and says which decoder ran."""
    from bench import run_bench

    monkeypatch.setattr(run_bench, "wait_for_quiet_cpu", lambda *a, **k: 0.0)  # the suite's machine is never quiet
    monkeypatch.setattr(run_bench, "start_warm_ray", lambda: 0.0)  # the suite's Ray is up already
    cases = "real_jpeg,real_jpeg_cpu_decode,torch_dataloader_jpeg_cpu,torch_dataloader_jpeg_gpu"
    argv = ["--model", "resnet18", "--precision", "fp32", "--batch-size", "8", "--images", "24", "--image-size",
            "32", "--smoke", "--cases", cases, "--out", str(tmp_path)]  # fmt: skip
    assert run_bench.main(argv) == 0
    (report,) = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    results = report["cases"]
    assert all("error" not in results[c] and results[c]["images"] == 24 for c in cases.split(",")), results
    decoders = {c: results[c]["decoder"] for c in cases.split(",")}
    assert decoders == {"real_jpeg": CPU_DECODER, "real_jpeg_cpu_decode": CPU_DECODER,
                        "torch_dataloader_jpeg_cpu": CPU_DECODER,
                        "torch_dataloader_jpeg_gpu": "torchvision (CPU)"}  # fmt: skip
    # A run this small can deliver all its rows at once, leaving no steady rate; the ratio is test_bench_args'.
    assert "real_jpeg_vs_dataloader_jpeg_cpu" in report["speedups"]


# --- on an NVIDIA GPU --------------------------------------------------------------------------
needs_gpu = pytest.mark.skipif(NO_GPU, reason="no NVIDIA GPU on this machine")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.subprocess
@pytest.mark.parametrize("decode", ["gpu", "auto"])
def test_the_cli_decodes_on_the_gpu(tmp_path, decode):
    import subprocess
    import sys

    from engine.core import data

    folder = os.path.dirname(data.ensure_jpegs(256)[0])
    out = tmp_path / "run.json"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    flags = ["--images", "256", "--num-gpus", "1", "--decode", decode, "--batch-size", "64", "--precision", "bf16"]
    command = [sys.executable, "-m", "engine", "run", "--data", folder, *flags, "--quiet", "--json", str(out)]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["rows"] == 256 and summary["decoded_on_gpu"] == 256 and summary["decoded_on_cpu"] == 0
    assert summary["decoder"].startswith(("nvimgcodec (", "torchvision (CUDA)"))
    assert f"decoded by {summary['decoder']}" in result.stdout
    assert 0 < summary["decode_share"] < 1


@pytest.mark.gpu
@needs_gpu
def test_a_mixed_folder_on_the_gpu_path(ray_local, tiny, mixed_folder):
    config = tiny.replace(data=str(mixed_folder), images=100, decode="gpu", num_gpus=1, image_size=224)
    summary = finish(ray_local.submit(config))
    assert summary["status"] == "finished", summary["error"]
    assert summary["rows"] == 7 and sorted(os.path.basename(n) for n in summary["skipped_names"]) == BAD
    assert summary["decoded_on_gpu"] >= 2  # the plain colour JPEGs at least; CMYK and gray may need PIL
    assert summary["decoded_on_gpu"] + summary["decoded_on_cpu"] == 7
    assert summary["decoder"].startswith(("nvimgcodec (", "torchvision (CUDA)"))
