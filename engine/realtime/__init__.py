"""Real-time inference: one image per request, answered by a model behind a dynamic batcher.

The other side of batch inference, measured live on the same models: a seeded open-loop
request stream from the driver (`load`), one async Ray actor per GPU (or one on the CPU)
that forms batches of up to `max_batch` requests or whatever came within `max_wait_ms`
(`batcher`, `server`), the latency of every request split into its parts (`stats`), and
a run that the engine's queue runs and stores like any other (`run`, `summary`). `search` finds
the largest rate that meets a latency target; `reference` reads the stored runs that compare the
two modes; `snippet` writes the same settings as Ray Serve code.
Like the rest of the engine, it imports nothing from Streamlit.
"""

from engine.realtime.config import RealtimeConfig

__all__ = ["RealtimeConfig"]
