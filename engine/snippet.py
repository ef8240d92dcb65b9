"""The plain Ray Data code equivalent to a RunConfig, ready to copy.

The snippet is self-contained (no `engine` import) so a user can paste it into
a script; a test executes it to prove it runs.
"""

from __future__ import annotations

from engine.config import RunConfig

_DATA = {
    "synthetic": """\
def make_images(batch):
    # Deterministic synthetic images, generated inside the pipeline.
    rng = np.random.default_rng(int(batch["id"][0]))
    images = rng.integers(0, 256, (len(batch["id"]), {size}, {size}, 3), dtype=np.uint8)
    return {{"key": batch["id"].astype(str), "image": images}}


ds = ray.data.range({images}, override_num_blocks={blocks}).map_batches(make_images, batch_size=None)""",
    "files": """\
ds = ray.data.read_images({source!r}, size=({size}, {size}), mode="RGB", include_paths=True)
ds = ds.limit({images}).rename_columns({{"path": "key"}})""",
}

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
    def __init__(self):
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = {dtype}
        model = models.get_model({model!r}, weights=None).eval()
        if self.device.type == "cuda":
            model = model.to(self.device, dtype=self.dtype, memory_format=torch.channels_last)
        self.model = model
        self.mean = torch.tensor(MEAN, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(STD, device=self.device).view(1, 3, 1, 1) * 255

    def __call__(self, batch):
        with torch.inference_mode():
            # uint8 goes to the device; normalising happens there.
            x = torch.from_numpy(batch["image"]).to(self.device, non_blocking=True).permute(0, 3, 1, 2)
            x = (x.float() - self.mean) / self.std
            if self.device.type == "cuda":
                logits = self.model(x.to(self.dtype).contiguous(memory_format=torch.channels_last))
            else:
                with torch.autocast("cpu", dtype=self.dtype, enabled=self.dtype != torch.float32):
                    logits = self.model(x)
            confidence, label = torch.softmax(logits.float(), dim=1).max(dim=1)
        return {{"key": batch["key"], "label_index": label.cpu().numpy(), "confidence": confidence.cpu().numpy()}}


predictions = ds.map_batches(
    Predictor,
    batch_size={batch_size},
    compute=ActorPoolStrategy(size={concurrency}),
    num_gpus={num_gpus},
)"""


def code_for(config: RunConfig) -> str:
    """Ray Data code that runs the same pipeline as `config`."""
    from engine.data import cache_dir, rows_per_block

    lines = [
        "import numpy as np",
        "import ray",
        "import torch",
        "from ray.data import ActorPoolStrategy, DataContext, TaskPoolStrategy",
        "from torchvision import models",
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
        ]
    lines.append("")
    if config.data == "synthetic":
        blocks = -(-config.images // rows_per_block(config))
        data = _DATA["synthetic"].format(size=config.image_size, images=config.images, blocks=blocks)
    else:
        source = f"{cache_dir()}/jpeg/{config.image_size}" if config.data == "jpeg" else config.data
        data = _DATA["files"].format(source=source, size=config.image_size, images=config.images)
    dtype = {"fp32": "torch.float32", "bf16": "torch.bfloat16", "fp16": "torch.float16"}[config.precision]
    body = (_NAIVE if config.pipeline == "naive" else _ACTOR).format(
        model=config.model,
        batch_size=config.batch_size,
        concurrency=config.concurrency,
        num_gpus=config.num_gpus,
        dtype=dtype,
    )
    tail = (
        f"predictions.write_parquet({config.output!r})"
        if config.output
        else 'for batch in predictions.iter_batches(batch_size=None):\n    print(len(batch["key"]), "predictions")'
    )
    return "\n".join(lines) + "\n" + data + "\n\n\n" + body + "\n" + tail + "\n"
