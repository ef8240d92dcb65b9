"""The playground's settings in its address, so a link opens it with them: `/?model=resnet50&batch=64`.

Each setting is a control's session key; its values are the control's own (a pipeline is `naive` or `actor`).
"""

from __future__ import annotations

WHOLE_NUMBERS = ("batch", "concurrency", "block", "images")
CHOICES = ("model", "pipeline", "precision")
VIEW = ("present",)  # how the page is shown, not what runs: `present=1` is the projector view


def read(params: dict[str, str], choices: dict[str, list[str]], ranges: dict[str, tuple[int, int]]):
    """The settings a link gives, and one line for each one it gets wrong (that one is ignored).

    `choices`: the allowed values of `model`, `pipeline` and `precision`; `ranges`: each whole number's bounds.
    """
    settings, problems = {}, []
    for name, value in params.items():
        if name in CHOICES:
            if value in choices[name]:
                settings[name] = value
            else:
                problems.append(f"link setting {name}={value!r} ignored: must be one of {', '.join(choices[name])}")
        elif name in WHOLE_NUMBERS:
            low, high = ranges[name]
            if value.isascii() and value.isdigit() and low <= int(value) <= high:
                settings[name] = int(value)
            else:
                problems.append(f"link setting {name}={value!r} ignored: must be a whole number from {low} to {high}")
        elif name not in VIEW:
            problems.append(f"link setting {name!r} ignored: links carry {', '.join(CHOICES + WHOLE_NUMBERS)}")
    return settings, problems


def write(settings: dict) -> dict[str, str]:
    """The address parameters for `settings` (keyed as `read` returns them)."""
    return {name: str(settings[name]) for name in CHOICES + WHOLE_NUMBERS + VIEW if name in settings}
