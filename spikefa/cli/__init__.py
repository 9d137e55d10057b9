"""The `spikefa` command-line interface. Bad input → exit 2 with one line on stderr;
divergence → 3."""

from __future__ import annotations

import _thread
import contextlib
import os
import sys
import threading

from spikefa.cli.parser import build_parser
from spikefa.errors import SpikefaError
from spikefa.shipped import checkpoint_path

__all__ = ["build_parser", "main", "resending_lost_interrupts"]


@contextlib.contextmanager
def resending_lost_interrupts():
    """Ctrl-C that arrives while Python code runs as a callback of compiled code (numba's hooks into
    LLVM while it compiles) is reported as "Exception ignored" and lost, and the run would go on.
    Inside this block such an interrupt is sent again, until it lands where it stops the run."""
    previous = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # from another thread, a moment later: sent from here, it would be raised inside this
            # hook
            resend = threading.Timer(0.01, _thread.interrupt_main)
            resend.daemon = True
            resend.start()
        else:
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(args, "set"):  # argparse reads `--set=--` as an empty list
        args.set = [s if isinstance(s, str) else "--" for s in args.set]
    try:
        if hasattr(args, "checkpoint"):
            args.checkpoint = checkpoint_path(args.checkpoint)
        with resending_lost_interrupts():
            return args.func(args)
    except SpikefaError as exc:
        print(f"spikefa: error: {' '.join(str(exc).split())}", file=sys.stderr)  # always one line
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "spikefa: interrupted; files already written are complete, earlier results are untouched",
            file=sys.stderr,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        # Exit at once: a second interrupt pending in a library's shutdown code would otherwise turn
        # the exit into a kill by SIGINT. Every file is written atomically, so nothing is left
        # half-done.
        os._exit(130)
