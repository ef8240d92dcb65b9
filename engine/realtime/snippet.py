"""The Ray Serve deployment that serves like a real-time run: the same model, batch size and wait.

The playground measures with its own actors; this is the code a user copies to serve the same
settings behind HTTP with Ray Serve's `@serve.batch`.
"""

from __future__ import annotations

from engine.realtime.config import RealtimeConfig
from engine.realtime.server import in_flight_cap

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def serve_code(config: RealtimeConfig) -> str:
    """Python source of a Serve deployment with these settings."""
    gpus = 1 if config.num_gpus else 0
    dtype = DTYPES[config.precision]
    return f'''import numpy as np
import torch
from ray import serve
from torchvision.models import get_model

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255


@serve.deployment(
    num_replicas={config.servers},  # one per GPU, as the playground's servers
    ray_actor_options={{"num_gpus": {gpus}, "num_cpus": 1}},
    max_ongoing_requests={in_flight_cap(config)},  # at least max_batch_size, or batches never fill
)
class Classifier:
    def __init__(self) -> None:
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch.{dtype}
        self.model = get_model("{config.model}", weights="DEFAULT").eval().to(self.device, dtype=self.dtype)
        self.mean, self.std = MEAN.to(self.device), STD.to(self.device)

    @serve.batch(max_batch_size={config.max_batch}, batch_wait_timeout_s={config.max_wait_ms / 1000:g})
    async def classify(self, images: list[np.ndarray]) -> list[int]:
        """One forward pass for every request that came within the wait (HxWx3 uint8 images)."""
        x = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2).float()
        with torch.inference_mode():
            logits = self.model(((x - self.mean) / self.std).to(self.dtype))
        return logits.argmax(dim=1).tolist()

    async def __call__(self, image: np.ndarray) -> int:
        return await self.classify(image)


handle = serve.run(Classifier.bind())
image = np.zeros(({config.image_size}, {config.image_size}, 3), np.uint8)
print(handle.remote(image).result())  # one request; many at once are batched
'''
