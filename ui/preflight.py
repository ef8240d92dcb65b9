"""`./dev app` checks before Streamlit starts: the operator's configuration reads, and a server that others can
reach has a sign-in. One line and exit code 2 otherwise; nothing is served."""

from __future__ import annotations

import os
import sys
import tomllib

from engine.core import policy

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".streamlit", "config.toml")


def server_address(args: list[str]) -> str | None:
    """Where Streamlit will listen: `--server.address` among its arguments, its environment variable, its config."""
    for i, arg in enumerate(args):
        if arg.startswith("--server.address="):
            return arg.split("=", 1)[1]
        if arg == "--server.address" and i + 1 < len(args):
            return args[i + 1]
    if os.environ.get("STREAMLIT_SERVER_ADDRESS"):
        return os.environ["STREAMLIT_SERVER_ADDRESS"]
    try:
        with open(CONFIG, "rb") as f:
            return tomllib.load(f).get("server", {}).get("address")
    except OSError:
        return None


def main(args: list[str]) -> int:
    try:
        refusal = policy.serving_refusal(policy.load(), server_address(args))
    except policy.PolicyError as exc:
        refusal = str(exc)
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
