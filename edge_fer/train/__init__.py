"""``edge-fer train`` and ``eval``: the training loop, DDP helpers and metrics."""
