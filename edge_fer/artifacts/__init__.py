"""Shared pieces every stage reads or writes: checkpoints, artifact metadata, atomic writes, plots, progress."""
