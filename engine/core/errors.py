"""Turning whatever a pipeline raised into one line a user can act on."""

from __future__ import annotations

import errno
import os
import re

MAX_LEN = 300
# "ValueError: message" as it appears at the end of a worker's traceback inside Ray's wrapper text
_RAISED = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")
_WRAPPERS = ("UserCodeException", "RayTaskError", "RayActorError", "ActorDiedError")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the names in its messages
_MARKERS = ("SystemException",)  # Ray Data raises internal errors `from SystemException()`: a label, not a cause
# credentials inside an address or URI: `scheme://user:password@host`, `token@host`, `?token=...`, and the
# signature of a presigned URL (`sig=` in Azure SAS, `X-Amz-Signature=`, `X-Goog-Credential=`)
_USERINFO = re.compile(r"((?:[A-Za-z][\w+.-]*://)?)[^\s/@'\"]+@(?=[\w\[])")
_SECRET_PARAM = re.compile(r"(?i)((?:token|password|passwd|secret|key|sig|signature|credential)=)[^&\s'\"]+")
SECRET_ENV = ("RAY_AUTH_TOKEN",)
_UNSAFE_GLOBAL = re.compile(r"unsupported GLOBAL (\S+)")  # what torch's weights_only loader refused to import


def redact(text: str) -> str:
    """`text` with credentials masked: what the app shows, stores or logs must not hand out a cluster's token."""
    text = _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", text))
    for name in SECRET_ENV:
        value = os.environ.get(name, "").strip()
        if len(value) >= 8:
            text = text.replace(value, "***")
    return text


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception behind Ray's task/user-code wrappers."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException) or type(inner).__name__ in _MARKERS:
            break
        exc = inner
    return exc


def _raised_in_worker(exc: BaseException) -> str | None:
    """The user's own exception line, which Ray 2.60 keeps only as text when a UDF fails."""
    seen = set()
    while isinstance(exc, BaseException) and id(exc) not in seen:
        seen.add(id(exc))
        for line in str(exc).splitlines():
            found = _RAISED.match(line.strip())
            if found and not found.group(1).rsplit(".", 1)[-1].startswith(_WRAPPERS):
                return f"{found.group(1).rsplit('.', 1)[-1]}: {found.group(2)}"
        exc = getattr(exc, "cause", None) or exc.__cause__
    return None


def one_line(exc: BaseException, config=None) -> str:
    """`Type: first line of message`, with advice for the failures users can fix."""
    root = root_cause(exc)
    lines = [line.strip() for line in str(root).splitlines() if line.strip()]
    text = f"{type(root).__name__}: {lines[0]}" if lines else type(root).__name__
    if type(root).__name__.startswith(_WRAPPERS):
        text = _raised_in_worker(exc) or text
    if "weights only load failed" in text.lower():
        found = _UNSAFE_GLOBAL.search(f"{exc}\n{root}")
        what = f" ({found.group(1)})" if found else ""
        text = f"weights file refused: it holds more than tensors{what}, which could run code; give a plain state dict"
    if getattr(root, "errno", None) == errno.ENOSPC or "no space left on device" in text.lower():
        where = f" writing to {config.output}" if config is not None and config.output else ""
        text = f"No space left on device{where}: free some space or choose another folder"
    if "out of memory" in text.lower() and "cuda" in text.lower():
        batch = f" at batch size {config.batch_size}" if config is not None else ""
        text = f"GPU out of memory{batch}: try a smaller batch size or fewer GPUs per actor"
    text = redact(_ANSI.sub("", text))
    return text if len(text) <= MAX_LEN else text[: MAX_LEN - 1] + "…"
