"""The plain Ray Data code equivalent to a RunConfig, ready to copy.

The snippet is self-contained (no `engine` import) so a user can paste it into
a script; a test executes it to prove it runs.
"""

from __future__ import annotations

from engine.core.config import RunConfig
from engine.ray_compat.env import LOCAL_RAY

_SYNTHETIC = """\
def make_images(batch):
    # Deterministic synthetic images, generated inside the pipeline.
    rng = np.random.default_rng(int(batch["id"][0]))
    images = rng.integers(0, 256, (len(batch["id"]), {size}, {size}, 3), dtype=np.uint8)
    return {{"key": batch["id"].astype(str), "image": images}}


# Ray's range makes blocks of images // blocks ids: here {rows}{whole}.
ds = ray.data.range({images}, override_num_blocks={blocks}).map_batches(make_images, batch_size=None)"""

_RESIZE = """\


def resize(batch):
    # The CPU pre-processing stage: resize to the model's input size.
    images = [np.asarray(Image.fromarray(img).resize(({size}, {size}))) for img in batch["image"]]
    return {{"key": batch["key"], "image": np.stack(images)}}


ds = ds.map_batches(resize, batch_size=None{stage_args})"""

_FILES = """\
def decode(batch):
    # Decode and resize each file; a file that is not an image is skipped and named.
    keys, images = [], []
    for path, data in zip(batch["path"], batch["bytes"]):
        try:
            with Image.open(io.BytesIO(data)) as img:
                images.append(np.asarray(img.convert("RGB").resize(({size}, {size}))))
            keys.append(path)
        except Exception:
            print("skipped", path)
    empty = np.zeros((0, {size}, {size}, 3), np.uint8)
    return {{"key": np.array(keys, dtype=object), "image": np.stack(images) if images else empty}}


ds = ray.data.read_binary_files({source!r}, include_paths=True).limit({images})
ds = ds.map_batches(decode, batch_size=None{stage_args})"""

_BYTES = """\
# Files are read as bytes: each actor decodes them on its own device (JPEG on the GPU) and resizes them there.
ds = ray.data.read_binary_files({source!r}, include_paths=True).limit({images})


def decode_on_device(batch, device, size):
    # JPEG on the device (torchvision's nvJPEG on a GPU), other formats on the CPU; a bad file is skipped.
    keys, images = [], []
    for path, data in zip(batch["path"], batch["bytes"]):
        raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        try:
            if data[:3] == b"\\xff\\xd8\\xff" and device.type == "cuda":
                image = decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
            else:
                image = decode_image(raw, mode=ImageReadMode.RGB).to(device)
        except Exception:
            print("skipped", path)
            continue
        images.append(F.interpolate(image[None].float(), size=(size, size), mode="bilinear"))
        keys.append(path)
    empty = torch.zeros(0, 3, size, size, device=device)
    return np.array(keys, dtype=object), torch.cat(images) if images else empty"""

_NAIVE = """\
def predict(batch):
    # The naive way: build the model for every batch, classify one image at a time.
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = models.get_model({model!r}, weights=None).eval().to(device)
    mean = torch.tensor(MEAN, device=device).view(3, 1, 1)
    std = torch.tensor(STD, device=device).view(3, 1, 1)
    labels, confidences = [], []
    with torch.inference_mode():
        for image in batch["image"]:
            x = torch.from_numpy(image).to(device).permute(2, 0, 1).float() / 255
            probs = torch.softmax(model(((x - mean) / std).unsqueeze(0)), dim=1)
            confidence, label = probs.max(dim=1)
            labels.append(int(label))
            confidences.append(float(confidence))
    return {{"key": batch["key"], "label_index": np.array(labels), "confidence": np.array(confidences)}}


predictions = ds.map_batches(
    predict,
    batch_size={batch_size},
    compute=TaskPoolStrategy(size={concurrency}),
    num_gpus={num_gpus},
)"""

_ACTOR = """\
class Predictor:
    # The actor way: load the model once per actor, one vectorised forward pass per batch.
    # emit_logits: pass images and logits on to a second model (an ensemble) instead of labelling.
    def __init__(self, model_name, emit_logits=False):
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = {dtype}
        self.emit_logits = emit_logits
        model = models.get_model(model_name, weights=None).eval()
        if self.device.type == "cuda":
            model = model.to(self.device, dtype=self.dtype, memory_format=torch.channels_last)
        self.model = model
        self.mean = torch.tensor(MEAN, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(STD, device=self.device).view(1, 3, 1, 1) * 255
        self.local = threading.local()  # calls may run on several threads: a CUDA stream each

    def __call__(self, batch):
        stream = contextlib.nullcontext()
        if self.device.type == "cuda":
            if not hasattr(self.local, "stream"):
                self.local.stream = torch.cuda.Stream(self.device)
            stream = torch.cuda.stream(self.local.stream)
        with torch.inference_mode(), stream:
            if "bytes" in batch:  # image files: decoded on this actor's device
                keys, x = decode_on_device(batch, self.device, {size})
            else:  # uint8 goes to the device; normalising happens there.
                keys = batch["key"]
                x = torch.from_numpy(batch["image"]).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
            images = x
            x = (x - self.mean) / self.std
            if self.device.type == "cuda":
                logits = self.model(x.to(self.dtype).contiguous(memory_format=torch.channels_last))
            else:
                with torch.autocast("cpu", dtype=self.dtype, enabled=self.dtype != torch.float32):
                    logits = self.model(x)
            logits = logits.float()
            if self.emit_logits:
                uint8 = images.clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
                return {{"key": keys, "image": uint8, "logits": logits.cpu().numpy()}}
            if "logits" in batch:  # the second model of an ensemble: average the two
                logits = (logits + torch.from_numpy(batch["logits"]).to(self.device)) / 2
            confidence, label = torch.softmax(logits, dim=1).max(dim=1)
        return {{"key": keys, "label_index": label.cpu().numpy(), "confidence": confidence.cpu().numpy()}}
"""

_ACTOR_STAGE = """

predictions = {source}.map_batches(
    Predictor,
    fn_constructor_kwargs={{"model_name": "{model}"{emit}}},
    batch_size={batch_size},
    compute={compute},
    num_gpus={num_gpus},{num_cpus}
)"""

_CPU_SHARE = """# CPU-only actors share the cores left after one per node for reading, so read tasks are never starved.
ray.init(ignore_reinit_error=True)
CPU_NODES = [n["Resources"]["CPU"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")]
CPU_SHARE = max(0.1, min(1.0, (sum(CPU_NODES) - len(CPU_NODES)) / {actors}))


"""


def code_for(config: RunConfig) -> str:
    """Ray Data code that runs the same pipeline as `config`."""
    lines = [
        "import contextlib",
        "import io",
        "import threading",
        "",
        "import numpy as np",
        "import ray",
        "import torch",
        "import torch.nn.functional as F",
        "from PIL import Image",
        "from ray.data import ActorPoolStrategy, DataContext, TaskPoolStrategy",
        "from torchvision import models",
        "from torchvision.io import ImageReadMode, decode_image, decode_jpeg",
        "",
        "MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)",
        "ctx = DataContext.get_current()",
        f"ctx.target_max_block_size = {config.block_size_mb} * 1024 * 1024  # Block size (MB)",
    ]
    if config.object_store_limit_mb:
        lines += [
            "ctx.execution_options.resource_limits = ctx.execution_options.resource_limits.copy(",
            f"    object_store_memory={config.object_store_limit_mb} * 1024 * 1024",
            ")",
            "# Ray deletes dead blocks in batches of 100, which can hold more than this limit. The playground's",
            "# local Ray deletes each at once: it starts with "
            + " ".join(f"{name}={value}" for name, value in LOCAL_RAY.items())
            + " in its environment.",
        ]
    lines.append("")
    model_code = _model_stages(config)
    tail = (
        f"predictions.write_parquet({config.output!r})"
        if config.output
        else 'for batch in predictions.iter_batches(batch_size=None):\n    print(len(batch["key"]), "predictions")'
    )
    return "\n".join(lines) + "\n" + _data_stages(config) + "\n\n\n" + model_code + "\n" + tail + "\n"


def _data_stages(config: RunConfig) -> str:
    from engine.core.data import jpeg_dir, rows_per_block, synthetic_blocks
    from engine.core.decode import decodes_in_actors

    separate = config.stages == "cpu_preprocess"
    stage_args = (
        f", num_cpus={config.preprocess_cpus:g}, compute=TaskPoolStrategy(size={config.preprocess_concurrency})"
        if separate
        else ""
    )
    if config.data != "synthetic":
        source = jpeg_dir() if config.data == "jpeg" else config.data
        if decodes_in_actors(config):
            return _BYTES.format(source=source, images=config.images)
        return _FILES.format(source=source, size=config.image_size, images=config.images, stage_args=stage_args)
    per_block = rows_per_block(config)
    blocks = synthetic_blocks(config)
    made = config.image_size * (2 if separate else 1)
    rows = config.images // blocks
    whole = ", whole batches of the model stage" if rows == per_block else ""
    code = _SYNTHETIC.format(size=made, images=config.images, blocks=blocks, rows=rows, whole=whole)
    return code + (_RESIZE.format(size=config.image_size, stage_args=stage_args) if separate else "")


def _model_stages(config: RunConfig) -> str:
    settings = {"batch_size": config.batch_size, "concurrency": config.concurrency, "num_gpus": config.num_gpus}
    if config.pipeline == "naive":
        return _NAIVE.format(model=config.model, **settings)
    dtype = {"fp32": "torch.float32", "bf16": "torch.bfloat16", "fp16": "torch.float16"}[config.precision]
    code = _ACTOR.format(dtype=dtype, size=config.image_size)
    calls = config.actor_calls
    settings["compute"] = (
        f"ActorPoolStrategy(\n        size={config.concurrency}, max_concurrent_calls_per_actor={calls}, "
        "enable_true_multi_threading=True\n    )"
        if calls > 1
        else f"ActorPoolStrategy(size={config.concurrency})"
    )
    if not config.num_gpus:
        code = _CPU_SHARE.format(actors=config.concurrency * config.model_stages) + code
        settings["num_cpus"] = "\n    num_cpus=CPU_SHARE,"
    else:
        settings["num_cpus"] = ""
    if config.stages == "ensemble":
        code += _ACTOR_STAGE.format(source="ds", model=config.model, emit=', "emit_logits": True', **settings)
        return code + _ACTOR_STAGE.format(source="predictions", model=config.second_model, emit="", **settings)
    return code + _ACTOR_STAGE.format(source="ds", model=config.model, emit="", **settings)
