"""Ray settings the engine needs, given as environment variables before Ray is imported.

Ray reads `RAY_<setting>` from the environment when it loads its config (at import, and again
in `ray.init` when token auth is on), and a raylet it starts inherits the environment.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

DRIVER = {
    # A Ray call after a lost cluster must fail, not join (or start) another Ray.
    "RAY_ENABLE_AUTO_CONNECT": "0",
    # Ray ends a driver whose GCS stays silent this long; the engine notices a lost cluster in
    # cluster.LOST_AFTER_S and carries on, so Ray's own limit is well past it.
    "RAY_gcs_rpc_server_reconnect_timeout_s": "300",
}
# While objects keep dying, Ray's raylet deletes them in batches of 100; image blocks are tens of MB, so
# dead blocks can hold more than Ray Data's own object-store limit. A local Ray deletes each at once.
LOCAL_RAY = {"RAY_free_objects_batch_size": "1"}


def apply_driver_settings() -> None:
    """Set DRIVER's variables (a value the user set wins); says so when Ray was imported first."""
    for name, value in DRIVER.items():
        os.environ.setdefault(name, value)
    if "ray" in sys.modules:
        log.info("ray was imported before engine: %s apply from the next Ray start", ", ".join(DRIVER))


def local_ray_settings() -> dict[str, str]:
    """The environment a local Ray's raylet starts with (it inherits this process's)."""
    return {name: os.environ.get(name, value) for name, value in LOCAL_RAY.items()}


# Notices Ray logs at WARNING on every start that say nothing wrong here: Ray is started from the engine's own
# long-lived thread (not the main one), token authentication stays on as it should, and Ray Data's progress
# bars are off because the CLI and the pages draw their own.
EXPECTED_NOTICES = {
    "ray._private.worker": "SIGTERM handler is not set because current thread is not the main thread",
    "ray._private.authentication.authentication_token_setup": "Token authentication is enabled for this Ray cluster",
    "ray.data._internal.progress": "Progress bars disabled",
}


class _DropNotice(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quiet_expected_notices() -> None:
    """Keep Ray's start-up notices that report nothing wrong out of a terminal's output (once per process)."""
    for name, text in EXPECTED_NOTICES.items():
        target = logging.getLogger(name)
        if not any(isinstance(f, _DropNotice) for f in target.filters):
            target.addFilter(_DropNotice(text))
