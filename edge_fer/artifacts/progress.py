"""The progress bar of the long loops over images (training epochs, QAT epochs): one look for both."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def epoch_progress(console: Console | None) -> Progress:
    """A transient bar per task with a live ``info`` field (running loss, accuracy); silent without a console."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console, transient=True,
                    disable=console is None)
