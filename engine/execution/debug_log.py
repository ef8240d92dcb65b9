"""The engine's debug log: full detail (a failed run's traceback) goes to a file, one line to the person."""

from __future__ import annotations

import logging
import logging.handlers
import os

MAX_BYTES, BACKUPS = 5 * 2**20, 2


def attach() -> str:
    """Send the engine's DEBUG records to `<cache>/logs/engine.log` (its owner's alone); returns the path."""
    from engine.core.data import cache_dir

    folder = os.path.join(cache_dir(), "logs")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, "engine.log")
    engine = logging.getLogger("engine")
    if not any(isinstance(h, logging.handlers.RotatingFileHandler) for h in engine.handlers):
        opener = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
        os.close(opener)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.DEBUG)
        engine.addHandler(handler)
        engine.setLevel(logging.DEBUG)
    return path
