"""The ``edge-fer`` command line: one small module per pipeline verb, each parse -> options -> stage -> print.

Every command turns :class:`EdgeFerError` into one red line and exit code 1 (:mod:`edge_fer.cli.app`);
nothing else in the package imports this package.
"""

from __future__ import annotations

import importlib

from edge_fer.cli.app import app

# Each module registers its verbs on import; --help lists them in this (pipeline) order.
for _verb in ("train", "export", "predict", "quantize", "build", "bench"):
    importlib.import_module(f"edge_fer.cli.{_verb}")

__all__ = ["app", "main"]


def main() -> None:
    app()


if __name__ == "__main__":
    main()
