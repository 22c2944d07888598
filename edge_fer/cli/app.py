"""The typer app, its error boundary and the parameter checks every verb module shares."""

from __future__ import annotations

import functools
import math
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console

from edge_fer.artifacts.errors import EdgeFerError, describe_os_error

app = typer.Typer(
    help="Take a facial-expression CNN from PyTorch to embedded devices, and prove nothing was lost.\n\n"
    "Pipeline: train -> export -> quantize -> build -> bench; predict runs any artifact on photos.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
F = TypeVar("F", bound=Callable)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` removes its temp files."""


def _terminate(signum: int, _frame) -> None:
    raise Interrupted(signum)


@app.callback()
def _root() -> None:
    """Take a facial-expression CNN from PyTorch to embedded devices, and prove nothing was lost."""
    signal.signal(signal.SIGTERM, _terminate)


def _say_error(message: str) -> None:
    console.print(f"[bold red]error:[/] {' '.join(message.split())}", highlight=False, soft_wrap=True)


def _failure(e: BaseException) -> tuple[str, int]:
    """The one line and exit code for a failure: the user's to fix (1), interrupted (130/143), a bug (2)."""
    if isinstance(e, EdgeFerError):
        return str(e), 1
    if isinstance(e, KeyboardInterrupt):
        term = isinstance(e, Interrupted)
        return f"{'terminated (SIGTERM)' if term else 'interrupted (Ctrl-C)'}; no partial output was left", \
            143 if term else 130
    if isinstance(e, OSError):
        return describe_os_error(e), 1
    return (f"internal error {type(e).__name__}: {e} (a bug in edge-fer; rerun with EDGE_FER_DEBUG=1 "
            "for the traceback and report it)"), 2


def user_errors(fn: F) -> F:
    """The error boundary: every failure becomes one line and a non-zero exit, never a traceback.

    EdgeFerError (exit 1) and OSError (exit 1, naming the path and the fix) are the user's
    to fix; anything else is a bug in edge-fer (exit 2).  ``EDGE_FER_DEBUG=1`` re-raises
    with the traceback.  Ctrl-C and SIGTERM exit 130/143 after the temp files are gone.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        debug = os.environ.get("EDGE_FER_DEBUG") == "1"
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise
        except (EdgeFerError, KeyboardInterrupt, OSError, Exception) as e:
            if debug:
                raise
            message, code = _failure(e)
            _say_error(message)
            raise typer.Exit(code) from None

    return wrapper  # type: ignore[return-value]


def finite(value: float | None) -> float | None:
    """typer's min/max let NaN through (every comparison with NaN is false): refuse it at parse time."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def positive(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a positive finite number")
    return value


def checkpoint_path(checkpoint: Path | None) -> Path:
    from edge_fer.artifacts.defaults import default_checkpoint

    return checkpoint if checkpoint is not None else default_checkpoint()



def names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())
