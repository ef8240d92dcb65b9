"""User text shown as text: Streamlit renders markdown (and `:color[...]`, `:emoji:`, `$math$`) in most elements."""

from __future__ import annotations

import re

_MARKDOWN = re.compile(r"[\\`*_{}\[\]<>$~#|]|:(?=[A-Za-z])|^[-+]")
_NUMBERED = re.compile(r"^(\d+)\.(?=\s)")  # "1. " would start a numbered list


def plain(text: object) -> str:
    """`text` with what markdown would interpret escaped, so a path, an address or a label shows as typed."""
    escaped = _MARKDOWN.sub(lambda m: "\\" + m.group(0), str(text))
    return _NUMBERED.sub(r"\1\\.", escaped)
