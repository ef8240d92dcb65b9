"""Import torchvision without importing torch's compiler, which nothing here uses.

`torchvision.ops.roi_align` imports `torch._dynamo` at import time for one helper
(`is_compile_supported`) that only runs inside `roi_align`, and that import costs about as
much as importing torch itself. Every Ray worker that builds a model or decodes an
image pays it as it starts, so it delays every actor pool's first batch. `torchvision()`
imports torchvision with a stand-in for that one helper, which imports the real
`torch._dynamo` the first time it is called; `torch.compile` and the real module work as
before. Where the stand-in no longer fits torchvision, it imports torchvision plainly
(a contract test says when).
"""

from __future__ import annotations

import logging
import sys
import threading
import types

log = logging.getLogger(__name__)
DYNAMO_UTILS = "torch._dynamo.utils"
_lock = threading.Lock()


def torchvision() -> types.ModuleType:
    """The torchvision module, imported without `torch._dynamo` where it was not imported yet."""
    if "torchvision" not in sys.modules:
        _import_once()
    import torchvision

    return torchvision


def _import_once() -> None:
    with _lock:
        if "torchvision" in sys.modules or "torch._dynamo" in sys.modules:
            return
        import torch  # noqa: F401  (torch's own import must not meet the stand-in)

        sys.modules[DYNAMO_UTILS] = _stand_in()
        try:
            import torchvision  # noqa: F401
        except ImportError as exc:
            # Python drops the modules whose import failed, so `torchvision()`'s plain import runs just those again.
            log.info("torchvision needs more of torch._dynamo than its stand-in has (%s): importing it plainly", exc)
        finally:
            del sys.modules[DYNAMO_UTILS]


def _stand_in() -> types.ModuleType:
    stand_in = types.ModuleType(DYNAMO_UTILS)

    def is_compile_supported(device_type):
        from torch._dynamo.utils import is_compile_supported as real

        return real(device_type)

    stand_in.is_compile_supported = is_compile_supported
    return stand_in
