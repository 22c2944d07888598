"""Command lines that ask another edge-fer for the options this one was given (``bench --host``, a
bundle's ``build.sh``), generated from the options dataclass the CLI filled, so they cannot drift."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields


def flag(opts: object, name: str) -> str:
    """The CLI flag of field ``name``: its ``flag`` metadata, else ``--name-with-dashes``."""
    meta = {f.name: f.metadata for f in fields(opts)}[name]
    return meta.get("flag", "--" + name.replace("_", "-"))


def option_args(opts: object, names: Iterable[str]) -> list[str]:
    """``--flag value`` for each field in ``names`` that is set (None and empty tuples are left out,
    True is a bare flag, tuples are comma-joined), in the order of ``names``."""
    args: list[str] = []
    for name in names:
        value = getattr(opts, name)
        if value is None or value is False or value == ():
            continue
        args.append(flag(opts, name))
        if value is not True:
            args.append(",".join(map(str, value)) if isinstance(value, tuple) else str(value))
    return args
