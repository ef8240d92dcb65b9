"""`python -m engine`: run, compare, sweep and inspect batch-inference runs from a terminal.

Bad arguments print one line and exit 2; a run prints a progress bar on stderr, a short
summary on stdout, and writes its full summary with `--json`.
"""

from __future__ import annotations

import logging
import shlex
import sys

from engine.cli.parser import build_parser
from engine.core.errors import redact

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # the terminal gets warnings; the debug log gets the rest
        handler.setLevel(logging.WARNING)
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    command = redact(shlex.join(["python", "-m", "engine", *argv]))
    if args.command == "advise":
        from engine.cli.advise import advise_command

        return advise_command(args)
    if args.command == "history":
        from engine.cli.history import history_command

        return history_command(args)
    if args.command == "realtime":
        from engine.cli.realtime import realtime_command

        return realtime_command(args, command)
    if args.command == "sweep":
        from engine.cli.sweep import sweep_command

        return sweep_command(args, command)
    from engine.cli.parser import EXIT_INTERRUPTED
    from engine.cli.runs import runs_command
    from engine.execution.debug_log import attach

    attach()
    try:
        return runs_command(args, command)
    except KeyboardInterrupt:  # before any run started (while Ray was starting): nothing to stop
        print("stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
