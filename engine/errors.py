"""Turning whatever a pipeline raised into one line a user can act on."""

from __future__ import annotations

MAX_LEN = 300


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception behind Ray's task/user-code wrappers."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def one_line(exc: BaseException, config=None) -> str:
    """`Type: first line of message`, with advice for the failures users can fix."""
    root = root_cause(exc)
    lines = [line.strip() for line in str(root).splitlines() if line.strip()]
    text = f"{type(root).__name__}: {lines[0]}" if lines else type(root).__name__
    if "out of memory" in str(root).lower() and "cuda" in str(root).lower():
        batch = f" at batch size {config.batch_size}" if config is not None else ""
        text = f"GPU out of memory{batch}: try a smaller batch size or fewer GPUs per actor"
    return text if len(text) <= MAX_LEN else text[: MAX_LEN - 1] + "…"
