"""``python -m edge_fer.cli`` (torchrun starts training this way)."""

from edge_fer.cli import main

main()
