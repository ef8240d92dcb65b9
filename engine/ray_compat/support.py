"""Which Ray this playground is built against, and what degrades on any other.

Every private feature is a function wrapped by `private(feature)`. On a Ray outside
`SUPPORTED`, or where the internal it reads has moved (an ImportError or AttributeError
inside it), the feature becomes "not available": its fallback answers instead, the
reason is logged once, and `degraded()` names it for the page's one-line notice.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

SUPPORTED = ">=2.60,<2.61"
F = TypeVar("F", bound=Callable[..., Any])

_lock = threading.Lock()
_degraded: dict[str, str] = {}  # feature -> why it is not available
_version_override: dict[str, str] = {}  # set by tests that fake another Ray


def ray_version() -> str:
    if "version" in _version_override:
        return _version_override["version"]
    import ray

    return ray.__version__


def unsupported_reason() -> str | None:
    """None on a Ray inside SUPPORTED, else one line saying which Ray this is."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    version = ray_version()
    try:
        inside = Version(version) in SpecifierSet(SUPPORTED)
    except InvalidVersion:
        inside = False
    return None if inside else f"Ray {version} is outside the range this playground is built for ({SUPPORTED})"


def private(feature: str, fallback: Callable[..., Any] | None = None) -> Callable[[F], F]:
    """Mark a function that reads Ray's internals: outside SUPPORTED, or once they have moved, `fallback` answers.

    Without a fallback the function returns None when not available.
    """

    def wrap(read: F) -> F:
        @functools.wraps(read)
        def guarded(*args, **kwargs):
            why = _degraded.get(feature) or unsupported_reason()
            if why is None:
                try:
                    return read(*args, **kwargs)
                except (ImportError, AttributeError) as exc:
                    why = f"{type(exc).__name__}: {exc}"
            _note(feature, why)
            return fallback(*args, **kwargs) if fallback else None

        guarded.feature = feature
        return guarded  # type: ignore[return-value]

    return wrap


def _note(feature: str, why: str) -> None:
    with _lock:
        if feature in _degraded:
            return
        _degraded[feature] = why
    log.warning("%s not available: %s", feature, why)


def degraded() -> dict[str, str]:
    """Private features not available in this process, each with why."""
    with _lock:
        return dict(_degraded)


def notice() -> str | None:
    """One line for the page when something degraded, else None."""
    found = degraded()
    if not found:
        return None
    cause = unsupported_reason() or "Ray's internals moved"
    return f"{cause}: not available here: {', '.join(sorted(found))}. Runs still run."


def fake_version(version: str | None) -> None:
    """Pretend Ray is `version` (None: the real one) and forget what degraded: for tests of the fallbacks."""
    with _lock:
        _version_override.clear()
        if version:
            _version_override["version"] = version
        _degraded.clear()
